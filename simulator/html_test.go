package simulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"
)

// htmlTestReport is a replay of a three-day scenario on two nodes: one stressed, one whose
// only session fell between samples, a skip, alerts out of order, a cluster-wide advisory
// and a missing alert.
func htmlTestReport() *Report {
	s := func(v float64) *float64 { return &v }
	ms := func(v int64) *int64 { return &v }
	return &Report{
		Scenario: "unit", Seed: 3, DurationMS: 30_000, StartedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC),
		Nodes: []NodeReport{
			{Name: "mx-1", Model: "T10", ProcessLimit: 10, PeakActive: 10,
				StressEpisodes: []EpisodeReport{{EnteredS: 3, ExitedS: s(12)}, {EnteredS: 17}},
				Load:           []Point{{T: 0}, {T: 3, Active: 10, Waiting: 20}, {T: 12, Active: 10}, {T: 30}}},
			{Name: "mx-2", Model: "T10", ProcessLimit: 10, PeakActive: 1,
				Load: []Point{{T: 0}, {T: 15}, {T: 30}}},
		},
		Alerts: []AlertReport{
			{Kind: "frequent", Cluster: "core", Diagnosis: "capacity", Subject: "third: cluster core lacks capacity",
				FoundInMailHog: true, StoredS: s(21), LatencyMS: ms(3900)},
			{Kind: "stress", Node: "mx-1", Cluster: "core", Subject: "second: mx-1 reached its limit",
				FoundInMailHog: true, StoredS: s(17.4), LatencyMS: ms(11)},
			{Kind: "stress", Node: "mx-2", Cluster: "core", Subject: "", FoundInMailHog: false},
			{Kind: "stress", Node: "mx-1", Cluster: "core", Subject: "first: mx-1 reached its limit",
				FoundInMailHog: true, StoredS: s(3.4), LatencyMS: ms(20)},
		},
		Skips:  []SkipReport{{Name: "quiet-days", At: 14.7, Duration: "72h0m0s"}},
		Phases: []PhaseReport{{Name: "warm-up", At: 0}, {Name: "second-wave", At: 14.7}},
	}
}

func writeTestHTML(t *testing.T, rep *Report) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	if err := rep.WriteHTML(path); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(page)
}

func TestReplayHTML(t *testing.T) {
	page := writeTestHTML(t, htmlTestReport())

	t.Run("lists alerts oldest first, with the time each was found, the missing last", func(t *testing.T) {
		at := func(s string) int {
			i := strings.Index(page, s)
			if i < 0 {
				t.Fatalf("page lacks %q", s)
			}
			return i
		}
		first, second, third, missing := at("first: mx-1"), at("second: mx-1"), at("third: cluster"), at(">missing<")
		if !(first < second && second < third && third < missing) {
			t.Errorf("alerts at %d, %d, %d, missing at %d; want them in that order", first, second, third, missing)
		}
		for _, s := range []string{"<th>found at</th>", "<td>3.4 s</td>", "<td>17.4 s</td>", "<td>21.0 s</td>"} {
			at(s)
		}
	})
	t.Run("marks where each live phase begins, the first one at 0 aside", func(t *testing.T) {
		if n := strings.Count(page, ">second-wave<"); n != 2 {
			t.Errorf("the phase is labelled %d times, want once on each of 2 charts", n)
		}
		if strings.Contains(page, ">warm-up<") {
			t.Error("the phase at 0 is labelled, over the axis")
		}
	})
	t.Run("marks the skipped phase by name on every chart", func(t *testing.T) {
		if n := strings.Count(page, "quiet-days: 72h skipped"); n != 2 {
			t.Errorf("the skip is labelled %d times, want once on each of 2 charts", n)
		}
	})
	t.Run("marks a cluster-wide alert once and says so", func(t *testing.T) {
		if n := strings.Count(page, "frequent advisory, cluster-wide (core)"); n != 1 {
			t.Errorf("the cluster-wide advisory is labelled %d times, want 1", n)
		}
		if !strings.Contains(page, "<td class=\"l\">cluster core</td>") {
			t.Error("the alerts table does not name the cluster of the cluster-wide advisory")
		}
	})
	t.Run("sets the charts in a sans-serif face", func(t *testing.T) {
		if strings.Contains(page, "Serif") || !strings.Contains(page, "font-family:'Liberation Sans',") {
			t.Error("the charts are not set in Liberation Sans with a fallback")
		}
	})
	t.Run("draws the active line over the limit line", func(t *testing.T) {
		limit, active := strings.Index(page, "stroke:#D62728"), strings.Index(page, "stroke:#1F77B4")
		if limit < 0 || active < limit {
			t.Errorf("limit stroked at %d, active at %d; want active after the limit", limit, active)
		}
	})
	t.Run("says when the samples missed a node's peak", func(t *testing.T) {
		if !strings.Contains(page, "mx-2 counted a peak of 1 active, but no sample shows more than 0") {
			t.Error("no note that mx-2's peak fell between samples")
		}
		if strings.Contains(page, "mx-1 counted a peak") {
			t.Error("a note on mx-1, whose peak was sampled")
		}
		if !strings.Contains(page, "sampled every 200ms") {
			t.Error("the page does not give the sampling interval")
		}
	})
	t.Run("wraps every table so it scrolls rather than being cut", func(t *testing.T) {
		if tables, wrapped := strings.Count(page, "<table"), strings.Count(page, `<div class="scroll"><table`); tables != wrapped {
			t.Errorf("%d tables, %d in a scrolling wrapper", tables, wrapped)
		}
	})
	t.Run("writes no NaN", func(t *testing.T) {
		if strings.Contains(page, "NaN") {
			t.Error("the page contains NaN")
		}
	})
}

func TestReplayHTMLOfAnEmptyRun(t *testing.T) {
	page := writeTestHTML(t, &Report{Scenario: "empty", Nodes: []NodeReport{{Name: "a", Model: "T10", ProcessLimit: 10}}})
	if strings.Contains(page, "NaN") || strings.Contains(page, "Inf") || !strings.Contains(page, "<svg") {
		t.Error("the page of a run without samples has no chart, or one with NaN or Inf")
	}
	if !strings.Contains(page, "no alerts") {
		t.Error(`the alerts table of a run without alerts does not say "no alerts"`)
	}
}

func TestLayoutLabels(t *testing.T) {
	const right = 500
	// Three lines close together, one near the right edge.
	xs := []vg.Length{100, 104, 130, 480}
	ws := []vg.Length{80, 60, 90, 70}
	placed, rows := layoutLabels(xs, ws, right)
	if rows < 2 {
		t.Errorf("%d rows for labels that overlap side by side, want at least 2", rows)
	}
	for i, a := range placed {
		if a.hi > right {
			t.Errorf("label %d ends at %v, past the right edge %v", i, a.hi, right)
		}
		for j, b := range placed {
			if i == j {
				continue
			}
			if a.row == b.row && a.lo < b.hi && b.lo < a.hi {
				t.Errorf("labels %d %+v and %d %+v overlap", i, a, j, b)
			}
			// The line of i rises through every row below its label.
			if b.row < a.row && b.lo <= xs[i] && xs[i] <= b.hi {
				t.Errorf("the line of label %d crosses label %d", i, j)
			}
		}
	}
	if placed[3].hi > xs[3] {
		t.Errorf("the label near the right edge %+v is not left of its line at %v", placed[3], xs[3])
	}
}

func TestShortDuration(t *testing.T) {
	for in, want := range map[string]string{
		"72h0m0s": "72h", "1h30m0s": "1h30m", "1m30s": "1m30s", "45s": "45s", "2m0s": "2m", "later": "later",
	} {
		if got := shortDuration(in); got != want {
			t.Errorf("shortDuration(%q) = %q, want %q", in, got, want)
		}
	}
}
