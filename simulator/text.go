package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the report for a person at a terminal.
func (rep *Report) WriteText(w io.Writer) {
	verdict := "PASSED"
	if !rep.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\nscenario %s (seed %d): %s in %.1fs\n\n", rep.Scenario, rep.Seed, verdict, float64(rep.DurationMS)/1000)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "node\tmodel\tlimit\tpeak\tepisodes\tsessions\tserved\t421\trejected\taccepted\tdelivered\tlost\tdup")
	for _, n := range rep.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", n.Name, n.Model, n.ProcessLimit,
			n.PeakActive, len(n.StressEpisodes), n.Sessions.Attempted, n.Sessions.Served, n.Sessions.Tempfailed,
			n.Sessions.Rejected, n.Messages.Accepted, n.Messages.Delivered, n.Messages.Lost, n.Messages.Duplicated)
	}
	tw.Flush()

	for _, n := range rep.Nodes {
		for _, e := range n.StressEpisodes {
			exited := "still in stress"
			if e.Exited != nil {
				exited = "exited " + e.Exited.Format(time.RFC3339) + fmt.Sprintf(" (%s)", e.Exited.Sub(e.Entered).Round(time.Second))
			}
			fmt.Fprintf(w, "  stress %s: entered %s, %s\n", n.Name, e.Entered.Format(time.RFC3339), exited)
		}
	}
	fmt.Fprintf(w, "\nclients: session p50 %dms p99 %dms; slot wait p50 %dms p99 %dms max %dms\n",
		rep.Latency.SessionP50MS, rep.Latency.SessionP99MS, rep.Latency.SlotWaitP50MS, rep.Latency.SlotWaitP99MS, rep.Latency.SlotWaitMaxMS)

	fmt.Fprintln(w, "\nalerts:")
	if len(rep.Alerts) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, a := range rep.Alerts {
		if !a.FoundInMailHog {
			fmt.Fprintf(w, "  MISSING  %s alert for %s\n", a.Kind, nonEmpty(a.Node, "cluster "+a.Cluster))
			continue
		}
		lat := "?"
		if a.LatencyMS != nil {
			lat = fmt.Sprintf("%dms after entry", *a.LatencyMS)
		}
		fmt.Fprintf(w, "  found    %q (%s)\n", a.Subject, lat)
	}

	fmt.Fprintln(w, "\nexpectations:")
	for _, e := range rep.Expectations {
		mark := "ok  "
		switch {
		case e.Skipped:
			mark = "skip"
		case !e.Passed:
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, e.Name, e.Detail)
	}
	fmt.Fprintln(w)
}

// WriteJSON writes the report to path, indented.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func nonEmpty(s, alt string) string {
	if strings.TrimSpace(s) != "" {
		return s
	}
	return alt
}
