package simulator

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart colours: load in blue, demand (active + waiting) in orange, the limit in red, stress
// shaded pink, alert arrivals in green, skips in grey.
var (
	colActive = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colDemand = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	colLimit  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colStress = color.NRGBA{R: 214, G: 39, B: 40, A: 45}
	colAlert  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	colSkip   = color.RGBA{R: 127, G: 127, B: 127, A: 255}
)

// WriteHTML writes one self-contained page: verdict, tables, and per node a chart of active
// sessions against the limit, stress episodes shaded and alert arrivals marked.
func (rep *Report) WriteHTML(path string) error {
	var charts []template.HTML
	for _, n := range rep.Nodes {
		svg, err := rep.nodeChart(n)
		if err != nil {
			return fmt.Errorf("chart for %s: %w", n.Name, err)
		}
		charts = append(charts, template.HTML(svg))
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, struct {
		R      *Report
		Charts []template.HTML
	}{rep, charts}); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func (rep *Report) nodeChart(n NodeReport) (string, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s (%s, limit %d)", n.Name, n.Model, n.ProcessLimit)
	p.X.Label.Text = "seconds since start (real time)"
	p.Y.Label.Text = "sessions"
	p.Legend.Top = true

	end := float64(rep.DurationMS) / 1000
	ymax := float64(n.ProcessLimit) * 1.2
	active, demand := make(plotter.XYs, len(n.Load)), make(plotter.XYs, len(n.Load))
	for i, pt := range n.Load {
		active[i] = plotter.XY{X: pt.T, Y: float64(pt.Active)}
		demand[i] = plotter.XY{X: pt.T, Y: float64(pt.Active + pt.Waiting)}
		ymax = max(ymax, float64(pt.Active+pt.Waiting)*1.05)
		end = max(end, pt.T)
	}
	for _, e := range n.StressEpisodes {
		to := end
		if e.ExitedS != nil {
			to = *e.ExitedS
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: e.EnteredS, Y: 0}, {X: to, Y: 0}, {X: to, Y: ymax}, {X: e.EnteredS, Y: ymax}})
		if err != nil {
			return "", err
		}
		poly.Color, poly.LineStyle.Width = colStress, 0
		p.Add(poly)
	}
	if err := addLine(p, demand, colDemand, "active + waiting", true); err != nil {
		return "", err
	}
	if err := addLine(p, active, colActive, "active", false); err != nil {
		return "", err
	}
	limit := plotter.XYs{{X: 0, Y: float64(n.ProcessLimit)}, {X: end, Y: float64(n.ProcessLimit)}}
	if err := addLine(p, limit, colLimit, "process limit", false); err != nil {
		return "", err
	}
	for _, a := range rep.Alerts {
		if a.StoredS != nil && (a.Node == n.Name || a.Node == "") {
			if err := addMark(p, *a.StoredS, ymax, colAlert, a.Kind+" alert"); err != nil {
				return "", err
			}
		}
	}
	for _, s := range rep.Skips {
		if err := addMark(p, s.At, ymax, colSkip, "skip "+s.Duration); err != nil {
			return "", err
		}
	}
	p.Y.Min, p.Y.Max, p.X.Min, p.X.Max = 0, ymax, 0, end

	c := vgsvg.New(9*vg.Inch, 3.2*vg.Inch)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	return stripXMLHeader(b.String()), nil
}

func addLine(p *plot.Plot, xys plotter.XYs, col color.Color, name string, dashed bool) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color, l.Width = col, vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// addMark draws a labelled vertical line at x.
func addMark(p *plot.Plot, x, ymax float64, col color.Color, label string) error {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax}})
	if err != nil {
		return err
	}
	l.Color, l.Width = col, vg.Points(1.5)
	l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(l)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: ymax * 0.93}}, Labels: []string{" " + label}})
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Color = col
	}
	p.Add(lb)
	return nil
}

// stripXMLHeader drops the XML prolog so the SVG can sit inside HTML.
func stripXMLHeader(s string) string {
	if i := strings.Index(s, "<svg"); i > 0 {
		return s[i:]
	}
	return s
}

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"divf": func(ms int64) float64 { return float64(ms) / 1000 },
	"pct": func(a, b int) string {
		if b == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mtastress replay: {{.R.Scenario}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
h1 span.pass{color:#2a7a2a} h1 span.fail{color:#b22}
table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;font-size:14px}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.ok{color:#2a7a2a;font-weight:bold} .bad{color:#b22;font-weight:bold}
figure{margin:1em 0} svg{max-width:100%;height:auto}
</style></head><body>
<h1>{{.R.Scenario}} <span class="{{if .R.Passed}}pass{{else}}fail{{end}}">{{if .R.Passed}}passed{{else}}failed{{end}}</span></h1>
<p>Seed {{.R.Seed}}, started {{.R.StartedAt.UTC.Format "2006-01-02 15:04:05 UTC"}}, {{printf "%.1f" (divf .R.DurationMS)}} s of real time.</p>
<h2>Expectations</h2>
<table><tr><th class="l">expectation</th><th class="l">result</th><th class="l">detail</th></tr>
{{range .R.Expectations}}<tr><td class="l">{{.Name}}</td><td class="l {{if .Passed}}ok{{else}}bad{{end}}">{{if .Passed}}held{{else}}failed{{end}}</td><td class="l">{{.Detail}}</td></tr>
{{end}}</table>
<h2>Nodes</h2>
<table><tr><th class="l">node</th><th class="l">model</th><th>limit</th><th>peak active</th><th>episodes</th><th>sessions</th><th>served</th><th>421</th><th>rejected</th><th>accepted</th><th>delivered</th><th>lost</th><th>duplicated</th></tr>
{{range .R.Nodes}}<tr><td class="l">{{.Name}}</td><td class="l">{{.Model}}</td><td>{{.ProcessLimit}}</td><td>{{.PeakActive}}</td><td>{{len .StressEpisodes}}</td><td>{{.Sessions.Attempted}}</td><td>{{.Sessions.Served}}</td><td>{{.Sessions.Tempfailed}} ({{pct .Sessions.Tempfailed .Sessions.Attempted}})</td><td>{{.Sessions.Rejected}}</td><td>{{.Messages.Accepted}}</td><td>{{.Messages.Delivered}}</td><td>{{.Messages.Lost}}</td><td>{{.Messages.Duplicated}}</td></tr>
{{end}}</table>
<h2>Alerts</h2>
<table><tr><th class="l">kind</th><th class="l">node</th><th class="l">diagnosis</th><th class="l">subject</th><th class="l">in MailHog</th><th>latency</th></tr>
{{range .R.Alerts}}<tr><td class="l">{{.Kind}}</td><td class="l">{{.Node}}</td><td class="l">{{.Diagnosis}}</td><td class="l">{{.Subject}}</td><td class="l {{if .FoundInMailHog}}ok{{else}}bad{{end}}">{{if .FoundInMailHog}}found{{else}}missing{{end}}</td><td>{{if .LatencyMS}}{{.LatencyMS}} ms{{end}}</td></tr>
{{else}}<tr><td class="l" colspan="6">no alerts</td></tr>{{end}}</table>
<h2>Load</h2>
<p>Active sessions (blue) and demand, active plus waiting (orange, dashed), against the process limit (red). Stress episodes are shaded; green lines mark when an alert reached MailHog.</p>
{{range .Charts}}<figure>{{.}}</figure>
{{end}}
</body></html>
`))
