package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
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
		// Against running MTAs the replay cannot see their next hop: what reached it is not known.
		delivered, lost, dup := "-", "-", "-"
		if rep.DeliveriesChecked {
			delivered, lost, dup = strconv.Itoa(n.Messages.Delivered), strconv.Itoa(n.Messages.Lost), strconv.Itoa(n.Messages.Duplicated)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", n.Name, n.Model, n.ProcessLimit,
			n.PeakActive, len(n.StressEpisodes), n.Sessions.Attempted, n.Sessions.Served, n.Sessions.Tempfailed,
			n.Sessions.Rejected, n.Messages.Accepted, delivered, lost, dup)
	}
	tw.Flush()
	if !rep.DeliveriesChecked {
		fmt.Fprintln(w, "  (delivered, lost, dup: not known against running MTAs, whose next hop the replay cannot see)")
	}

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
		fmt.Fprintf(w, "  %s %s (line %d): %s\n", mark, e.Name, e.Line, e.Detail)
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
