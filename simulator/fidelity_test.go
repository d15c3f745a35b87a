package simulator

import (
	"testing"

	"github.com/mtastress/mtastress/scenarios"
)

// checkFidelity holds the planner's prediction beside what a live replay measured: for each
// node, the same number of stress episodes and about the same peak of active sessions. The
// planner does not model network and per-recipient time, so a node that stayed below its
// limit may peak a little differently; a node that reached its limit must do so in both.
func checkFidelity(t *testing.T, sc *scenarios.Scenario, cat *scenarios.Catalog, rep *Report) {
	t.Helper()
	pred, err := PlanTopology(sc, PlanOptions{Catalog: cat})
	if err != nil {
		t.Fatalf("planner: %v", err)
	}
	if len(pred.PerNode) != len(rep.Nodes) {
		t.Fatalf("planner has %d nodes, replay %d", len(pred.PerNode), len(rep.Nodes))
	}
	for i, live := range rep.Nodes {
		p := pred.PerNode[i]
		if p.Episodes != len(live.StressEpisodes) {
			t.Errorf("%s: planner predicts %d stress episodes, the replay had %d", live.Name, p.Episodes, len(live.StressEpisodes))
		}
		tolerance := max(2, live.ProcessLimit/5)
		if d := p.PeakActive - live.PeakActive; d > tolerance || d < -tolerance {
			t.Errorf("%s: planner predicts peak %d active, the replay reached %d (tolerance %d)",
				live.Name, p.PeakActive, live.PeakActive, tolerance)
		}
		t.Logf("%s: episodes planned %d / live %d, peak active planned %d / live %d",
			live.Name, p.Episodes, len(live.StressEpisodes), p.PeakActive, live.PeakActive)
	}
}
