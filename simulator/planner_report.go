package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// WriteText prints the candidates as a table and the recommendation under it.
func (rep *PlanReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nplan %s (seed %d): %s of virtual time, %d candidates, "+
		"%d sessions simulated in %.2fs\n\n",
		rep.Scenario, rep.Seed, time.Duration(rep.DurationS*float64(time.Second)).Round(time.Second),
		len(rep.Candidates), rep.SimulatedSessions, rep.Elapsed.Seconds())

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tnodes\tslots\tsessions\tepisodes\ta week\tin stress\twaited\t421\t"+
		"p99 wait\tpeak\talerts\tadvisories\t")
	for i := range rep.Candidates {
		c := &rep.Candidates[i]
		mark := ""
		if c.Qualifies {
			mark = "ok"
		}
		if rep.isRecommended(c) {
			mark = "<- recommended"
		}
		// Partial alert counts are lower bounds: mark them with a +.
		more := ""
		if c.AlertsPartial {
			more = "+"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.1fs\t%.2f%%\t%.3f%%\t%.0fms\t%d\t%d%s\t%d%s\t%s\n",
			c.Model, c.Nodes, c.Slots, c.Sessions, c.Episodes, c.EpisodesPerWeek, c.TimeInStressS,
			100*c.WaitedShare, 100*c.BlockedShare, c.P99WaitMS, c.PeakActive, c.StressAlerts, more,
			c.FrequentAdvisories, more, mark)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, rep.verdict())
	fmt.Fprintln(w)
}

// verdict is the recommendation in one sentence.
func (rep *PlanReport) verdict() string {
	rule := fmt.Sprintf("at most 1 stress episode a week and at most %.3f%% of sessions answered 421",
		100*rep.MaxBlocked)
	r := rep.Recommendation
	if r == nil {
		return "recommendation: none; no candidate has " + rule +
			": add nodes (--models with bigger models) or lower the target"
	}
	return fmt.Sprintf("recommendation: %s × %d, the fewest slots with %s", r.Model, r.Nodes, rule)
}

func (rep *PlanReport) isRecommended(c *PlanCandidate) bool {
	r := rep.Recommendation
	return r != nil && r.Model == c.Model && r.Nodes == c.Nodes
}

// WriteJSON writes the report to path, indented.
func (rep *PlanReport) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
