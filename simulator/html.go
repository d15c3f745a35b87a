package simulator

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/mtastress/mtastress/scenarios"
)

// Chart colours: load in blue, demand (active + waiting) in orange, the limit in red, stress
// shaded pink, alert arrivals in green, skips in grey, phase starts in light grey.
var (
	colActive = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colDemand = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	colLimit  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colStress = color.NRGBA{R: 214, G: 39, B: 40, A: 45}
	colAlert  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	colSkip   = color.RGBA{R: 127, G: 127, B: 127, A: 255}
	colPhase  = color.RGBA{R: 170, G: 170, B: 170, A: 255}
	colTitle  = color.RGBA{R: 34, G: 34, B: 34, A: 255}
)

// Dash patterns: demand dashed, the limit in long dashes, alerts dotted, skips dashed.
var (
	dashDemand = []vg.Length{vg.Points(4), vg.Points(2)}
	dashLimit  = []vg.Length{vg.Points(7), vg.Points(3)}
	dashAlert  = []vg.Length{vg.Points(1.5), vg.Points(2)}
	dashSkip   = []vg.Length{vg.Points(5), vg.Points(2)}
	dashPhase  = []vg.Length{vg.Points(1), vg.Points(3)}
)

// Chart geometry. The labels of the marks sit in a band between the title and the data, in as
// many rows as they need, so they cover neither the lines nor each other; the legend has its
// own column right of the data.
const (
	chartW       = 9 * vg.Inch
	chartPlotH   = 3 * vg.Inch // axes and data
	chartLegendW = 1.75 * vg.Inch
	chartTitleH  = vg.Length(20)
	chartRowH    = vg.Length(12) // one row of labels
	chartPad     = vg.Length(3)  // between a mark's line and its label, and between labels
	// chartHeadroom is the share of the highest value left free above it.
	chartHeadroom = 0.12
)

// chartFont is the charts' typeface: the page is sans-serif, and gonum/plot's default is
// Liberation Serif. Its font cache holds the Liberation Sans faces.
var chartFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// WriteHTML writes one self-contained page: verdict, tables, and per node a chart of active
// sessions against the limit, stress episodes shaded and phases and alert arrivals marked.
func (rep *Report) WriteHTML(path string) error {
	var figs []nodeFigure
	for i, n := range rep.Nodes {
		svg, err := rep.nodeChart(n, rep.marks(i))
		if err != nil {
			return fmt.Errorf("chart for %s: %w", n.Name, err)
		}
		figs = append(figs, nodeFigure{Chart: template.HTML(svg), Note: missedPeak(n)})
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, struct {
		R        *Report
		Alerts   []alertRow
		Figures  []nodeFigure
		Interval time.Duration
	}{rep, rep.alertRows(), figs, seriesInterval}); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// nodeFigure is one node's chart and what the page says under it.
type nodeFigure struct {
	Chart template.HTML
	Note  string
}

// missedPeak says so when the samples never saw the node's own peak: a session shorter than
// the sampling interval can start and end between two samples.
func missedPeak(n NodeReport) string {
	sampled := 0
	for _, pt := range n.Load {
		sampled = max(sampled, pt.Active)
	}
	if sampled >= n.PeakActive {
		return ""
	}
	return fmt.Sprintf("%s counted a peak of %d active, but no sample shows more than %d: "+
		"sessions shorter than the %v between samples were missed.", n.Name, n.PeakActive, sampled,
		seriesInterval)
}

// alertRow is a line of the alerts table.
type alertRow struct {
	AlertReport
	At string // when MailHog stored it, in seconds since the start; empty when missing
}

// alertRows lists the alerts oldest first, then the missing ones, which have no time.
func (rep *Report) alertRows() []alertRow {
	rows := make([]alertRow, len(rep.Alerts))
	for i, a := range rep.Alerts {
		rows[i].AlertReport = a
		if a.StoredS != nil {
			rows[i].At = fmt.Sprintf("%.1f s", *a.StoredS)
		}
	}
	slices.SortStableFunc(rows, func(a, b alertRow) int {
		switch {
		case a.StoredS == nil || b.StoredS == nil:
			return cmp.Compare(b2i(a.StoredS == nil), b2i(b.StoredS == nil))
		default:
			return cmp.Compare(*a.StoredS, *b.StoredS)
		}
	})
	return rows
}

// chartMark is a moment marked on a chart: a vertical line over the data and a label above.
type chartMark struct {
	x      float64
	label  string
	legend string // what the legend calls this kind of mark
	col    color.Color
	dashes []vg.Length
}

// marks lists what node i's chart marks: the phases and the alerts about the node. An alert
// about the whole cluster (no node) is marked once, on the first node's chart, and says so.
func (rep *Report) marks(i int) []chartMark {
	ms := rep.phaseMarks()
	for _, a := range rep.Alerts {
		mine, clusterWide := a.Node == rep.Nodes[i].Name, a.Node == "" && i == 0
		if a.StoredS == nil || !(mine || clusterWide) {
			continue
		}
		label := a.Kind + " alert"
		if a.Kind == scenarios.AlertFrequent {
			label = "frequent advisory"
		}
		if clusterWide {
			label += ", cluster-wide (" + a.Cluster + ")"
		}
		ms = append(ms, chartMark{x: *a.StoredS, label: label, legend: "alert reached MailHog",
			col: colAlert, dashes: dashAlert})
	}
	return ms
}

// phaseMarks marks the phases: where each live phase's traffic began, with its name (the first,
// at 0, goes unmarked), and where the shared clock jumped over each skipped one.
func (rep *Report) phaseMarks() []chartMark {
	var ms []chartMark
	for _, p := range rep.Phases {
		if p.At < 0.5 {
			continue
		}
		ms = append(ms, chartMark{x: p.At, label: p.Name, legend: "phase begins",
			col: colPhase, dashes: dashPhase})
	}
	for _, s := range rep.Skips {
		label := fmt.Sprintf("%s: %s skipped", s.Name, shortDuration(s.Duration))
		ms = append(ms, chartMark{x: s.At, label: label, legend: "skipped phase",
			col: colSkip, dashes: dashSkip})
	}
	return ms
}

// shortDuration drops a duration's zero tail: "72h0m0s" is "72h", "1m30s" stays.
func shortDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil || d == 0 {
		return s
	}
	out := d.String()
	if d%time.Minute == 0 {
		out = strings.TrimSuffix(out, "0s")
	}
	if d%time.Hour == 0 {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

// nodeChart draws one node's load: stress shaded, the marks, the limit, demand, and active on
// top, so that a node held at its limit shows its blue line over the red one.
func (rep *Report) nodeChart(n NodeReport, marks []chartMark) (string, error) {
	p := plot.New()
	p.X.Label.Text = "seconds since start (real time)"
	p.Y.Label.Text = "sessions"
	p.X.Tick.Marker, p.Y.Tick.Marker = wholeTicks{}, wholeTicks{}
	sansFonts(p)

	// The x axis spans the run; the y axis leaves headroom over the highest value.
	end, top := max(float64(rep.DurationMS)/1000, 1), float64(max(n.ProcessLimit, 1))
	for _, pt := range n.Load {
		top = max(top, float64(pt.Active+pt.Waiting))
		end = max(end, pt.T)
	}
	for _, m := range marks {
		end = max(end, m.x)
	}
	ymax := top * (1 + chartHeadroom)

	stress, err := addStress(p, n.StressEpisodes, end, ymax)
	if err != nil {
		return "", err
	}
	for _, m := range marks {
		l, err := newLine(plotter.XYs{{X: m.x, Y: 0}, {X: m.x, Y: ymax}}, m.col, 1.2, m.dashes)
		if err != nil {
			return "", err
		}
		p.Add(l)
	}
	limit, demand, active, err := loadLines(n, end)
	if err != nil {
		return "", err
	}
	p.Add(limit, demand, active)
	p.Y.Min, p.Y.Max, p.X.Min, p.X.Max = 0, ymax, 0, end

	leg := plot.NewLegend()
	leg.Left, leg.Top = true, true
	leg.TextStyle.Font, leg.Padding = font.From(chartFont, 9), 3
	leg.Add("active", active)
	leg.Add("active + waiting", demand)
	leg.Add("process limit", limit)
	leg.Add("stress episode", stress)
	if err := legendMarks(&leg, marks); err != nil {
		return "", err
	}
	return drawChart(p, &leg, fmt.Sprintf("%s (%s, limit %d)", n.Name, n.Model, n.ProcessLimit), marks)
}

// loadLines are the node's limit, its demand (active + waiting) and its active sessions. The
// limit is wide and dashed, active narrower: drawn last, it shows over the limit, which shows
// at its edges and between the dashes.
func loadLines(n NodeReport, end float64) (limit, demand, active *plotter.Line, err error) {
	act, dem := make(plotter.XYs, len(n.Load)), make(plotter.XYs, len(n.Load))
	for i, pt := range n.Load {
		act[i] = plotter.XY{X: pt.T, Y: float64(pt.Active)}
		dem[i] = plotter.XY{X: pt.T, Y: float64(pt.Active + pt.Waiting)}
	}
	lim := plotter.XYs{{X: 0, Y: float64(n.ProcessLimit)}, {X: end, Y: float64(n.ProcessLimit)}}
	if limit, err = newLine(lim, colLimit, 2.5, dashLimit); err != nil {
		return nil, nil, nil, err
	}
	if demand, err = newLine(dem, colDemand, 1.5, dashDemand); err != nil {
		return nil, nil, nil, err
	}
	if active, err = newLine(act, colActive, 1.5, nil); err != nil {
		return nil, nil, nil, err
	}
	return limit, demand, active, nil
}

// wholeTicks marks whole numbers, sessions or seconds, at a round step, about six to the
// axis: the default ticker labels a range such as 0..67 in hundredths, at 0 and 50 only.
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	raw := (hi - lo) / 6
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	step = max(step, 1)
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
		if half := v + step/2; step >= 2 && half <= hi && half == math.Trunc(half) {
			ticks = append(ticks, plot.Tick{Value: half})
		}
	}
	return ticks
}

// sansFonts sets every text of the plot in the chart font, at the sizes gonum/plot chose.
func sansFonts(p *plot.Plot) {
	for _, f := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font,
		&p.Y.Label.TextStyle.Font, &p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		*f = font.From(chartFont, f.Size)
	}
}

// addStress shades each stress episode and returns a polygon styled the same, for the legend.
func addStress(p *plot.Plot, eps []EpisodeReport, end, ymax float64) (*plotter.Polygon, error) {
	for _, e := range eps {
		to := end
		if e.ExitedS != nil {
			to = *e.ExitedS
		}
		from := e.EnteredS
		box := plotter.XYs{{X: from, Y: 0}, {X: to, Y: 0}, {X: to, Y: ymax}, {X: from, Y: ymax}}
		poly, err := plotter.NewPolygon(box)
		if err != nil {
			return nil, err
		}
		poly.Color, poly.LineStyle.Width = colStress, 0
		p.Add(poly)
	}
	swatch, err := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	swatch.Color, swatch.LineStyle.Width = colStress, 0
	return swatch, nil
}

func newLine(xys plotter.XYs, col color.Color, w float64, dash []vg.Length) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.Color, l.Width, l.Dashes = col, vg.Points(w), dash
	return l, nil
}

// legendMarks adds a legend entry for each kind of mark the chart has.
func legendMarks(leg *plot.Legend, marks []chartMark) error {
	var seen []string
	for _, m := range marks {
		if slices.Contains(seen, m.legend) {
			continue
		}
		seen = append(seen, m.legend)
		l, err := newLine(plotter.XYs{{X: 0, Y: 0}}, m.col, 1.2, m.dashes)
		if err != nil {
			return err
		}
		leg.Add(m.legend, l)
	}
	return nil
}

// drawChart lays the chart out, title, label band, data and legend, and returns it as SVG.
func drawChart(p *plot.Plot, leg *plot.Legend, title string, marks []chartMark) (string, error) {
	lbl := draw.TextStyle{Font: font.From(chartFont, 9), Handler: plot.DefaultTextHandler,
		YAlign: draw.YCenter}

	// The x positions do not depend on the chart's height: lay the labels out on a trial
	// canvas first, then size the band to their rows.
	trial := p.DataCanvas(draw.Crop(draw.New(vgsvg.New(chartW, chartPlotH)), 0, -chartLegendW, 0, 0))
	xOf, _ := p.Transforms(&trial)
	xs, widths := make([]vg.Length, len(marks)), make([]vg.Length, len(marks))
	for i, m := range marks {
		xs[i], widths[i] = xOf(m.x), lbl.Width(m.label)
	}
	placed, rows := layoutLabels(xs, widths, chartW)
	band := chartRowH*vg.Length(rows) + chartPad

	c := vgsvg.New(chartW, chartTitleH+band+chartPlotH)
	dc := draw.New(c)
	ttl := draw.TextStyle{Color: colTitle, Font: font.From(chartFont, 12),
		Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop}
	dc.FillText(ttl, vg.Point{X: (trial.Min.X + trial.Max.X) / 2, Y: dc.Max.Y - 3}, title)
	area := draw.Crop(dc, 0, -chartLegendW, 0, -(chartTitleH + band))
	p.Draw(area)

	data := p.DataCanvas(area)
	for i, m := range marks {
		y := data.Max.Y + chartPad + chartRowH*(vg.Length(placed[i].row)+0.5)
		sty := draw.LineStyle{Color: m.col, Width: vg.Points(1.2), Dashes: m.dashes}
		dc.StrokeLine2(sty, xs[i], data.Max.Y, xs[i], y)
		lbl.Color = m.col
		dc.FillText(lbl, vg.Point{X: placed[i].lo, Y: y}, m.label)
	}
	legC := dc
	legC.Min = vg.Point{X: data.Max.X + 2*chartPad + 8, Y: data.Min.Y}
	legC.Max.Y = data.Max.Y
	leg.Draw(legC)

	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	return svgFallbackFont(stripXMLHeader(b.String())), nil
}

// placedLabel is where a mark's label went: its text spans lo..hi, in a row counted upward
// from the data.
type placedLabel struct {
	lo, hi vg.Length
	row    int
}

// layoutLabels gives each label, w wide for a line at x, a row above the data such that no two
// labels overlap and no line rises through another's label. A label sits right of its line,
// or left of it when it would pass the right edge. Going from the rightmost line leftward,
// each label takes the lowest row that fits; rows is how many were used.
func layoutLabels(xs, ws []vg.Length, right vg.Length) (placed []placedLabel, rows int) {
	placed = make([]placedLabel, len(xs))
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(xs[b], xs[a]) })

	var texts [][]placedLabel // by row
	var lines [][]vg.Length   // by row: the lines rising through it to labels above
	for _, i := range order {
		pl := placedLabel{lo: xs[i] + chartPad, hi: xs[i] + chartPad + ws[i]}
		if pl.hi > right {
			pl.lo, pl.hi = xs[i]-chartPad-ws[i], xs[i]-chartPad
		}
		pl.row = -1
		for r := 0; r <= len(texts) && pl.row < 0; r++ {
			if labelFits(texts, lines, r, pl, xs[i], true) {
				pl.row = r
			}
		}
		// Crowded: give up keeping lines off labels rather than stack labels on each other.
		for r := 0; pl.row < 0; r++ {
			if labelFits(texts, lines, r, pl, xs[i], false) {
				pl.row = r
			}
		}
		for len(texts) <= pl.row {
			texts, lines = append(texts, nil), append(lines, nil)
		}
		texts[pl.row] = append(texts[pl.row], pl)
		for r := range pl.row {
			lines[r] = append(lines[r], xs[i])
		}
		placed[i] = pl
	}
	return placed, len(texts)
}

// labelFits reports whether pl, the label of the line at x, fits in row r: clear of the labels
// and the rising lines in that row, and, if lineClear, its line clear of the labels below.
func labelFits(texts [][]placedLabel, lines [][]vg.Length, r int, pl placedLabel, x vg.Length,
	lineClear bool) bool {
	if r < len(texts) {
		for _, o := range texts[r] {
			if pl.lo < o.hi+chartPad && o.lo < pl.hi+chartPad {
				return false
			}
		}
		for _, lx := range lines[r] {
			if pl.lo-chartPad < lx && lx < pl.hi+chartPad {
				return false
			}
		}
	}
	for j := 0; lineClear && j < min(r, len(texts)); j++ {
		for _, o := range texts[j] {
			if o.lo-chartPad < x && x < o.hi+chartPad {
				return false
			}
		}
	}
	return true
}

// svgFallbackFont lets a browser without Liberation Sans use a metric-compatible face, or at
// least a sans-serif one: vgsvg names the family alone.
func svgFallbackFont(svg string) string {
	return strings.ReplaceAll(svg, "font-family:Liberation Sans;",
		"font-family:'Liberation Sans',Arimo,Arial,Helvetica,sans-serif;")
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
.scroll{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;font-size:14px}
th{background:#f4f4f4} td.l,th.l{text-align:left} td,th{white-space:nowrap} td.w{white-space:normal}
.ok{color:#2a7a2a;font-weight:bold} .bad{color:#b22;font-weight:bold}
figure{margin:1em 0} svg{max-width:100%;height:auto} figcaption{font-size:14px;color:#555}
</style></head><body>
<h1>{{.R.Scenario}} <span class="{{if .R.Passed}}pass{{else}}fail{{end}}">{{if .R.Passed}}passed{{else}}failed{{end}}</span></h1>
<p>Seed {{.R.Seed}}, started {{.R.StartedAt.UTC.Format "2006-01-02 15:04:05 UTC"}}, {{printf "%.1f" (divf .R.DurationMS)}} s of real time.</p>
<h2>Expectations</h2>
<div class="scroll"><table><tr><th class="l">expectation</th><th class="l">result</th><th class="l">detail</th></tr>
{{range .R.Expectations}}<tr><td class="l">{{.Name}}</td><td class="l {{if .Passed}}ok{{else}}bad{{end}}">{{if .Passed}}held{{else}}failed{{end}}</td><td class="l w">{{.Detail}}</td></tr>
{{end}}</table></div>
<h2>Nodes</h2>
<div class="scroll"><table><tr><th class="l">node</th><th class="l">model</th><th>limit</th><th>peak active</th><th>episodes</th><th>sessions</th><th>served</th><th>421</th><th>rejected</th><th>accepted</th><th>delivered</th><th>lost</th><th>duplicated</th></tr>
{{range .R.Nodes}}<tr><td class="l">{{.Name}}</td><td class="l">{{.Model}}</td><td>{{.ProcessLimit}}</td><td>{{.PeakActive}}</td><td>{{len .StressEpisodes}}</td><td>{{.Sessions.Attempted}}</td><td>{{.Sessions.Served}}</td><td>{{.Sessions.Tempfailed}} ({{pct .Sessions.Tempfailed .Sessions.Attempted}})</td><td>{{.Sessions.Rejected}}</td><td>{{.Messages.Accepted}}</td><td>{{.Messages.Delivered}}</td><td>{{.Messages.Lost}}</td><td>{{.Messages.Duplicated}}</td></tr>
{{end}}</table></div>
<h2>Alerts</h2>
<div class="scroll"><table><tr><th>found at</th><th class="l">kind</th><th class="l">node</th><th class="l">diagnosis</th><th class="l">subject</th><th class="l">in MailHog</th><th>latency</th></tr>
{{range .Alerts}}<tr><td>{{.At}}</td><td class="l">{{.Kind}}</td><td class="l">{{if .Node}}{{.Node}}{{else}}cluster {{.Cluster}}{{end}}</td><td class="l">{{.Diagnosis}}</td><td class="l w">{{.Subject}}</td><td class="l {{if .FoundInMailHog}}ok{{else}}bad{{end}}">{{if .FoundInMailHog}}found{{else}}missing{{end}}</td><td>{{if .LatencyMS}}{{.LatencyMS}} ms{{end}}</td></tr>
{{else}}<tr><td class="l" colspan="7">no alerts</td></tr>{{end}}</table></div>
<p>Alerts oldest first; "found at" is when MailHog stored the alert, in seconds since the start.</p>
<h2>Load</h2>
<p>Active sessions (blue) and demand, active plus waiting (orange, dashed), against the process limit (red, dashed). Stress episodes are shaded; green dotted lines mark when an alert reached MailHog, grey dashed lines a skipped phase, light grey dotted lines where a phase begins. An alert about the whole cluster is marked once, on the first node's chart.
The load is sampled every {{.Interval}}: a session shorter than that can start and end between two samples, so a chart can show fewer active sessions than the node's peak in the table.</p>
{{range .Figures}}<figure>{{.Chart}}{{if .Note}}<figcaption>{{.Note}}</figcaption>{{end}}</figure>
{{end}}
</body></html>
`))
