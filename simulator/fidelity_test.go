package simulator

import (
	"testing"

	"github.com/mtastress/mtastress/scenarios"
)

// checkFidelity holds the planner's prediction beside what a live replay measured: for each
// node, the same number of stress episodes, and the same answer to whether the node's limit was
// reached. Below the limit the live peak follows how fast this machine runs the sessions — on a
// loaded CI machine a harvest session's twenty RCPT round trips take many times their idle
// length, which the planner's fixed per-message time does not follow — so there the two peaks
// are logged side by side but only required to agree that the limit was not reached.
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
		if (p.PeakActive >= live.ProcessLimit) != (live.PeakActive >= live.ProcessLimit) {
			t.Errorf("%s: planner predicts peak %d active, the replay reached %d, of a limit of %d",
				live.Name, p.PeakActive, live.PeakActive, live.ProcessLimit)
		}
		t.Logf("%s: episodes planned %d / live %d, peak active planned %d / live %d",
			live.Name, p.Episodes, len(live.StressEpisodes), p.PeakActive, live.PeakActive)
	}
}
