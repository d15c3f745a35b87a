package simulator

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
)

// The planner's page: one self-contained HTML file with an inline SVG chart, one row per
// candidate: stress episodes a week on a log scale, and the share answered 421, each with its
// threshold drawn in, and the recommended row highlighted. Plain SVG needs no fonts or
// scripts, so the page opens the same anywhere, a CI artifact viewer included.

// Chart geometry, in SVG user units.
const (
	planRowH   = 18
	planLabelW = 110
	planPanelW = 300
	planGap    = 40
	planTop    = 36
)

// WriteHTML writes the page to path.
func (rep *PlanReport) WriteHTML(path string) error {
	type row struct {
		*PlanCandidate
		Rec bool
	}
	rows := make([]row, len(rep.Candidates))
	for i := range rep.Candidates {
		rows[i] = row{&rep.Candidates[i], rep.isRecommended(&rep.Candidates[i])}
	}
	var b bytes.Buffer
	err := planPage.Execute(&b, struct {
		R       *PlanReport
		Rows    []row
		Verdict string
		Chart   template.HTML
	}{rep, rows, rep.verdict(), template.HTML(rep.chartSVG())}) // chartSVG escapes its texts
	if err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// planChart maps the candidates' figures to x positions. Episodes a week span from 0 to tens
// of thousands (a short scenario scaled to a week), so that panel is log10(1 + x); the 421
// share is linear up to the largest of the candidates' shares and the target.
type planChart struct {
	maxEp, maxBl float64
	blX0         float64 // left edge of the 421 panel
}

func newPlanChart(rep *PlanReport) planChart {
	ch := planChart{maxEp: math.Log10(2), maxBl: rep.MaxBlocked,
		blX0: float64(planLabelW + planPanelW + planGap)}
	for _, c := range rep.Candidates {
		ch.maxEp = max(ch.maxEp, math.Log10(1+c.EpisodesPerWeek))
		ch.maxBl = max(ch.maxBl, c.BlockedShare)
	}
	if ch.maxBl == 0 {
		ch.maxBl = 1
	}
	return ch
}

func (ch planChart) epX(v float64) float64 {
	return planLabelW + planPanelW*math.Log10(1+v)/ch.maxEp
}

func (ch planChart) blX(v float64) float64 { return ch.blX0 + planPanelW*v/ch.maxBl }

// chartSVG draws the two panels, a row per candidate. Every text it writes is escaped.
func (rep *PlanReport) chartSVG() string {
	ch := newPlanChart(rep)
	rows := len(rep.Candidates)
	width, bottom := planLabelW+2*planPanelW+planGap+20, planTop+planRowH*rows
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" `+
		`font-family="sans-serif" font-size="11">`, width, bottom+24)
	svgText(&s, planLabelW, 14, "bold", "stress episodes a week (log scale; line: 1)")
	svgText(&s, ch.blX0, 14, "bold", "share answered 421 (line: target "+planPct(rep.MaxBlocked)+")")
	for i := range rep.Candidates {
		rep.chartRow(&s, ch, i, width)
	}
	svgDash(&s, ch.epX(1), bottom)
	svgDash(&s, ch.blX(rep.MaxBlocked), bottom)
	svgText(&s, planLabelW, bottom+14, "normal", "0")
	top := fmt.Sprintf("%.0f", math.Pow(10, ch.maxEp)-1)
	svgText(&s, -(planLabelW + planPanelW), bottom+14, "normal", top)
	svgText(&s, ch.blX0, bottom+14, "normal", "0")
	svgText(&s, -(ch.blX0 + planPanelW), bottom+14, "normal", planPct(ch.maxBl))
	s.WriteString(`</svg>`)
	return s.String()
}

// chartRow draws candidate i: its label and two bars, green when it qualifies, on a highlight
// when it is the recommendation.
func (rep *PlanReport) chartRow(s *strings.Builder, ch planChart, i, width int) {
	c := &rep.Candidates[i]
	y := planTop + i*planRowH
	weight := "normal"
	if rep.isRecommended(c) {
		weight = "bold"
		fmt.Fprintf(s, `<rect x="0" y="%d" width="%d" height="%d" fill="#d9f2d9"/>`, y-2, width, planRowH)
	}
	svgText(s, 4, y+11, weight, fmt.Sprintf("%s × %d", c.Model, c.Nodes))
	fill := "#d62728"
	if c.Qualifies {
		fill = "#2ca02c"
	}
	svgBar(s, planLabelW, y, ch.epX(c.EpisodesPerWeek)-planLabelW, fill,
		fmt.Sprintf("%.1f a week", c.EpisodesPerWeek))
	svgBar(s, ch.blX0, y, ch.blX(c.BlockedShare)-ch.blX0, fill, planPct(c.BlockedShare))
}

// svgText writes text at (x, y); a negative x anchors the text's end at -x.
func svgText[X int | float64](s *strings.Builder, x X, y int, weight, text string) {
	anchor := "start"
	if x < 0 {
		x, anchor = -x, "end"
	}
	fmt.Fprintf(s, `<text x="%v" y="%d" font-weight="%s" text-anchor="%s">%s</text>`,
		x, y, weight, anchor, template.HTMLEscapeString(text))
}

func svgBar[X int | float64](s *strings.Builder, x X, y int, w float64, fill, title string) {
	fmt.Fprintf(s, `<rect x="%v" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`,
		x, y, w, planRowH-5, fill, template.HTMLEscapeString(title))
}

// svgDash draws a threshold: a dashed vertical line over the rows.
func svgDash(s *strings.Builder, x float64, bottom int) {
	fmt.Fprintf(s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="4 3"/>`,
		x, planTop-6, x, bottom)
}

func planPct(v float64) string { return fmt.Sprintf("%.3g%%", 100*v) }

var planPage = template.Must(template.New("plan").
	Funcs(template.FuncMap{"pct": planPct}).
	Parse(planPageHTML))

const planPageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mtastress plan: {{.R.Scenario}}</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.rec { background: #d9f2d9; font-weight: bold; }
</style></head><body>
<h1>Capacity plan: {{.R.Scenario}}</h1>
<p>Seed {{.R.Seed}}, {{printf "%.0f" .R.DurationS}} s of virtual time,
{{.R.SimulatedSessions}} sessions simulated.</p>
<p><strong>{{.Verdict}}</strong></p>
{{.Chart}}
<table>
<tr><th>model</th><th>nodes</th><th>slots</th><th>sessions</th><th>episodes</th>
<th>a week</th><th>in stress</th><th>waited</th><th>answered 421</th><th>p99 wait</th>
<th>peak</th><th>stress alerts</th><th>advisories</th></tr>
{{range $c := .Rows}}<tr{{if $c.Rec}} class="rec"{{end}}>
<td>{{$c.Model}}</td><td>{{$c.Nodes}}</td><td>{{$c.Slots}}</td><td>{{$c.Sessions}}</td>
<td>{{$c.Episodes}}</td><td>{{printf "%.1f" $c.EpisodesPerWeek}}</td>
<td>{{printf "%.1f" $c.TimeInStressS}} s</td><td>{{pct $c.WaitedShare}}</td>
<td>{{pct $c.BlockedShare}}</td><td>{{printf "%.0f" $c.P99WaitMS}} ms</td>
<td>{{$c.PeakActive}}</td><td>{{$c.StressAlerts}}</td><td>{{$c.FrequentAdvisories}}</td></tr>
{{end}}</table>
</body></html>
`
