package simulator

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
	"time"
)

// The planner's page: one self-contained HTML file with an inline SVG chart, one row per
// candidate: stress episodes a week and the share answered 421, both on log scales, each with
// its threshold drawn in, and the recommended row highlighted. Plain SVG needs no fonts or
// scripts, so the page opens the same anywhere, a CI artifact viewer included.

// Chart geometry, in SVG user units. Each panel leaves planValueW right of its axis for the
// value written after each bar.
const (
	planRowH   = 18
	planLabelW = 110
	planPanelW = 260
	planValueW = 64
	planGap    = 20
	planTop    = 36
	// planTickGap is the least room between two tick labels; closer ones are left out.
	planTickGap = 44
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
		R        *PlanReport
		Rows     []row
		Verdict  string
		Duration string
		Sessions string
		Chart    template.HTML
	}{rep, rows, rep.verdict(), planDuration(rep.DurationS), rep.sessionsSimulated(),
		template.HTML(rep.chartSVG())}) // chartSVG escapes its texts
	if err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// planDuration is the scenario's virtual length as the text report prints it ("72h0m16s").
func planDuration(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// sessionsSimulated says what SimulatedSessions counts: every candidate replays the same
// traffic, so the figure a reader compares with the table is the one per candidate.
func (rep *PlanReport) sessionsSimulated() string {
	n := len(rep.Candidates)
	if n == 0 {
		return "no candidates"
	}
	lo, hi := rep.Candidates[0].Sessions, rep.Candidates[0].Sessions
	for _, c := range rep.Candidates {
		lo, hi = min(lo, c.Sessions), max(hi, c.Sessions)
	}
	per := fmt.Sprintf("%d sessions per candidate", lo)
	if lo != hi {
		per = fmt.Sprintf("%d to %d sessions per candidate", lo, hi)
	}
	return fmt.Sprintf("%s, %d candidate%s, %d sessions simulated in all", per, n, plural(n),
		rep.SimulatedSessions)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// planAxis is one panel's log scale: value v sits at x0 + planPanelW*f(v), f running from 0
// at the floor to 1 at the top. A log axis has no 0: values at or below the floor are drawn
// at the floor, as a marker rather than a bar, and its tick says "0".
type planAxis struct {
	x0         float64
	floor, top float64
	// plusOne plots log10(1 + v), for counts: the floor is then 0 itself.
	plusOne bool
	label   func(float64) string
}

func (a planAxis) f(v float64) float64 {
	if a.plusOne {
		return math.Log10(1+max(v, 0)) / math.Log10(1+a.top)
	}
	v = min(max(v, a.floor), a.top)
	return math.Log10(v/a.floor) / math.Log10(a.top/a.floor)
}

func (a planAxis) x(v float64) float64 { return a.x0 + planPanelW*a.f(v) }

// atFloor reports whether v is drawn as a marker at the floor rather than as a bar.
func (a planAxis) atFloor(v float64) bool { return a.f(v) == 0 }

// ticks are the axis's marks: the floor, labelled "0", and each power of ten up to the top.
func (a planAxis) ticks() []float64 {
	ts := []float64{a.floor}
	d := a.floor
	if a.plusOne {
		d = 1
	} else {
		d *= 10
	}
	for ; d <= a.top*(1+1e-9); d *= 10 {
		ts = append(ts, d)
	}
	return ts
}

// newPlanAxes fits the two panels to the candidates. Episodes a week span from 0 to tens of
// thousands (a short scenario scaled to a week): log10(1 + x), up to the power of ten above the
// largest and at least 10. The 421 share runs from a power of ten below both the target and
// the smallest share above 0, so that the target line stands clear of the floor, up to 100 %
// or the power of ten above the largest share.
func newPlanAxes(rep *PlanReport) (ep, bl planAxis) {
	maxEp, maxBl, minBl := 1.0, rep.MaxBlocked, rep.MaxBlocked
	for _, c := range rep.Candidates {
		maxEp = max(maxEp, c.EpisodesPerWeek)
		maxBl = max(maxBl, c.BlockedShare)
		if c.BlockedShare > 0 && (minBl <= 0 || c.BlockedShare < minBl) {
			minBl = c.BlockedShare
		}
	}
	if minBl <= 0 {
		minBl = 1e-3
	}
	ep = planAxis{x0: planLabelW, floor: 0, top: math.Pow(10, max(1, math.Ceil(math.Log10(maxEp)))),
		plusOne: true, label: planCount}
	bl = planAxis{x0: planLabelW + planPanelW + planValueW + planGap,
		floor: math.Pow(10, math.Floor(math.Log10(max(minBl, 1e-6)))-1),
		label: planPct}
	bl.top = min(1, math.Pow(10, math.Ceil(math.Log10(max(maxBl, bl.floor*10)))))
	return ep, bl
}

// planCount labels a tick of the episodes axis: 1, 10, 100, 1k, 10k.
func planCount(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gk", v/1000)
	}
	return fmt.Sprintf("%g", v)
}

// chartSVG draws the two panels, a row per candidate. Every text it writes is escaped.
func (rep *PlanReport) chartSVG() string {
	ep, bl := newPlanAxes(rep)
	rows := len(rep.Candidates)
	width, bottom := int(bl.x0)+planPanelW+planValueW, planTop+planRowH*rows
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" `+
		`font-family="sans-serif" font-size="11">`, width, bottom+24)
	svgText(&s, ep.x0, 14, "bold", "stress episodes a week (log scale; dashed: 1)")
	svgText(&s, bl.x0, 14, "bold",
		"share answered 421 (log scale; dashed: target "+planPct(rep.MaxBlocked)+")")
	for i := range rep.Candidates {
		rep.chartRow(&s, ep, bl, i, width)
	}
	svgDash(&s, ep.x(1), bottom)
	svgDash(&s, bl.x(rep.MaxBlocked), bottom)
	svgAxis(&s, ep, bottom)
	svgAxis(&s, bl, bottom)
	s.WriteString(`</svg>`)
	return s.String()
}

// chartRow draws candidate i: its label and two bars, green when it qualifies, on a highlight
// when it is the recommendation. A value at an axis's floor is a dot there; each value is
// written after its bar.
func (rep *PlanReport) chartRow(s *strings.Builder, ep, bl planAxis, i, width int) {
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
	svgValue(s, ep, c.EpisodesPerWeek, 1, y, fill, fmt.Sprintf("%.1f", c.EpisodesPerWeek), "a week")
	svgValue(s, bl, c.BlockedShare, rep.MaxBlocked, y, fill, planPct(c.BlockedShare), "answered 421")
}

// svgValue draws v on axis a in row y: a bar, or a dot at the floor, then the value's text,
// moved past the threshold's dashed line when it would cross it.
func svgValue(s *strings.Builder, a planAxis, v, threshold float64, y int,
	fill, text, what string) {
	end := a.x(v)
	if a.atFloor(v) {
		fmt.Fprintf(s, `<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"><title>%s</title></circle>`,
			a.x0+4.5, float64(y)+float64(planRowH-5)/2, fill, template.HTMLEscapeString(text+" "+what))
		end = a.x0 + 9
	} else {
		svgBar(s, a.x0, y, end-a.x0, fill, text+" "+what)
	}
	// About 6.5 units a character at font-size 11.
	if dash := a.x(threshold); end < dash && end+4+6.5*float64(len(text)) > dash-3 {
		end = dash
	}
	svgText(s, end+4, y+11, "normal", text)
}

// svgAxis draws an axis line under the rows with its ticks, dropping a label that would
// crowd the one before it.
func svgAxis(s *strings.Builder, a planAxis, bottom int) {
	fmt.Fprintf(s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888"/>`,
		a.x0, bottom+1, a.x0+planPanelW, bottom+1)
	last := math.Inf(-1)
	for i, t := range a.ticks() {
		x := a.x(t)
		fmt.Fprintf(s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888"/>`,
			x, bottom+1, x, bottom+5)
		if x-last < planTickGap {
			continue
		}
		label := a.label(t)
		if i == 0 {
			label = "0"
		}
		fmt.Fprintf(s, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`,
			x, bottom+17, template.HTMLEscapeString(label))
		last = x
	}
}

// svgText writes text starting at (x, y).
func svgText(s *strings.Builder, x float64, y int, weight, text string) {
	fmt.Fprintf(s, `<text x="%.1f" y="%d" font-weight="%s">%s</text>`,
		x, y, weight, template.HTMLEscapeString(text))
}

func svgBar(s *strings.Builder, x float64, y int, w float64, fill, title string) {
	fmt.Fprintf(s, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`,
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
.scroll { overflow-x: auto; }
</style></head><body>
<h1>Capacity plan: {{.R.Scenario}}</h1>
<p>Seed {{.R.Seed}}, {{.Duration}} of virtual time, {{.Sessions}}.</p>
<p><strong>{{.Verdict}}</strong></p>
<div class="scroll">{{.Chart}}</div>
<div class="scroll"><table>
<tr><th>model</th><th>nodes</th><th>slots</th><th>sessions</th><th>episodes</th>
<th>a week</th><th>in stress</th><th>waited</th><th>answered 421</th><th>p99 wait</th>
<th>peak</th><th>stress alerts</th><th>advisories</th></tr>
{{range $c := .Rows}}<tr{{if $c.Rec}} class="rec"{{end}}>
<td>{{$c.Model}}</td><td>{{$c.Nodes}}</td><td>{{$c.Slots}}</td><td>{{$c.Sessions}}</td>
<td>{{$c.Episodes}}</td><td>{{printf "%.1f" $c.EpisodesPerWeek}}</td>
<td>{{printf "%.1f" $c.TimeInStressS}} s</td><td>{{pct $c.WaitedShare}}</td>
<td>{{pct $c.BlockedShare}}</td><td>{{printf "%.0f" $c.P99WaitMS}} ms</td>
<td>{{$c.PeakActive}}</td><td>{{$c.StressAlerts}}</td><td>{{$c.FrequentAdvisories}}</td></tr>
{{end}}</table></div>
</body></html>
`
