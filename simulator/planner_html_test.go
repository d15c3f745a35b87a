package simulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// planHTMLTestReport is weekly-repeat's plan: 72 h 16 s of virtual time, 141 sessions for each
// of three candidates; the two that qualify have 0 episodes and 0 % answered 421.
func planHTMLTestReport() *PlanReport {
	return &PlanReport{
		Scenario: "weekly-repeat", Seed: 17, DurationS: 259216, MaxBlocked: DefaultMaxBlocked,
		Candidates: []PlanCandidate{
			{Model: "T10", Nodes: 1, Slots: 10, Sessions: 141, Episodes: 2, EpisodesPerWeek: 4.7, BlockedShare: 0.35461},
			{Model: "T50", Nodes: 1, Slots: 50, Sessions: 141, Qualifies: true},
			{Model: "T100", Nodes: 1, Slots: 100, Sessions: 141, Qualifies: true},
		},
		Recommendation:    &Recommendation{Model: "T50", Nodes: 1},
		SimulatedSessions: 423,
	}
}

func writePlanHTML(t *testing.T, rep *PlanReport) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.html")
	if err := rep.WriteHTML(path); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(page)
}

func TestPlanHTML(t *testing.T) {
	rep := planHTMLTestReport()
	page := writePlanHTML(t, rep)

	t.Run("gives the virtual time as the text report does", func(t *testing.T) {
		if !strings.Contains(page, "72h0m16s of virtual time") {
			t.Error("the page does not say 72h0m16s of virtual time")
		}
	})
	t.Run("says the sessions are per candidate", func(t *testing.T) {
		if !strings.Contains(page, "141 sessions per candidate, 3 candidates, 423 sessions simulated in all") {
			t.Error("the page does not give the sessions per candidate and the candidates")
		}
	})
	t.Run("marks zero values at the floor, green when they qualify", func(t *testing.T) {
		// T50 and T100: one dot in each panel.
		if n := strings.Count(page, `<circle`); n != 4 {
			t.Errorf("%d dots at the floor, want 4", n)
		}
		if n := strings.Count(page, `fill="#2ca02c"`); n != 4 {
			t.Errorf("%d green marks, want 4", n)
		}
	})
	t.Run("labels the log axes' floor 0 and puts the target off it", func(t *testing.T) {
		_, bl := newPlanAxes(rep)
		if bl.floor >= rep.MaxBlocked || bl.x(rep.MaxBlocked)-bl.x0 < 20 {
			t.Errorf("floor %v, target at %.1f of the panel; want the target clear of the floor",
				bl.floor, bl.x(rep.MaxBlocked)-bl.x0)
		}
		for _, s := range []string{`text-anchor="middle">0</text>`, `>0.1%</text>`, `>100%</text>`} {
			if !strings.Contains(page, s) {
				t.Errorf("the axes lack the tick %s", s)
			}
		}
	})
	t.Run("writes no NaN or Inf", func(t *testing.T) {
		if strings.Contains(page, "NaN") || strings.Contains(page, "Inf") {
			t.Error("the page contains NaN or Inf")
		}
	})
}

func TestPlanHTMLWithoutZeros(t *testing.T) {
	rep := planHTMLTestReport()
	rep.MaxBlocked = 0
	for i := range rep.Candidates {
		rep.Candidates[i].BlockedShare = 0.002 * float64(i+1)
		rep.Candidates[i].EpisodesPerWeek = 12000
	}
	rep.Candidates[2].Sessions = 150
	page := writePlanHTML(t, rep)
	if strings.Contains(page, "NaN") || strings.Contains(page, "Inf") {
		t.Error("the page contains NaN or Inf")
	}
	if !strings.Contains(page, "141 to 150 sessions per candidate") {
		t.Error("the page does not give the range of sessions per candidate")
	}
	if strings.Count(page, `<circle`) != 0 {
		t.Error("a dot at the floor for a value above it")
	}
}
