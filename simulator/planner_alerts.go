package simulator

import (
	"sort"
	"time"

	"github.com/mtastress/mtastress/alerts"
	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/mta"
)

// planAlerts feeds a candidate's stress transitions, as the events its nodes would publish, to
// the alert service's rules and counts the emails they decide: "MTA Stress" and "Frequent MTA
// Stress" advisories. Events go in event-time order, each applied at its own time, and an
// advisory's settle window is released when the clock passes it, as the service does. Load
// samples are not simulated: the roster comes from cfg.Rosters, and the advisories' evidence
// lacks the sessions-served shares, which changes their text but not their count.
func planAlerts(nodes []events.Node, trans []planTransition,
	cfg alerts.RuleConfig) (stress, frequent int) {
	evs := planEvents(nodes, planFirstEpisodes(trans, planAlertCap))
	var st alerts.State
	tally := func(sent []alerts.SendAlert) {
		for _, a := range sent {
			switch a.Kind {
			case alerts.KindStress:
				stress++
			case alerts.KindFrequent:
				frequent++
			}
		}
	}
	var sent []alerts.SendAlert
	for _, ev := range evs {
		st, sent = planReleaseDue(st, ev.Time, cfg)
		tally(sent)
		st, sent, _ = alerts.Apply(st, ev, ev.Time, cfg)
		tally(sent)
	}
	st, sent = planReleaseDue(st, time.Unix(1<<62, 0), cfg)
	tally(sent)
	return stress, frequent
}

// planAlertCap bounds the episodes of one candidate that the rules are fed. The rules keep a
// node's entries of the last 8 days in a list and scan it per event, so their cost grows with
// the square of the entries in a week: 130 000 episodes took minutes. A candidate with more
// than this many episodes has more than one a week for any scenario (at most 3650 days, 522
// weeks), so it cannot be recommended, and its alert counts are reported as partial.
const planAlertCap = 2000

// planFirstEpisodes keeps the transitions of the first max episodes, by entry time.
func planFirstEpisodes(trans []planTransition, max int) []planTransition {
	var entries []int64
	for _, t := range trans {
		if t.kind == mta.Entered {
			entries = append(entries, t.entered)
		}
	}
	if len(entries) <= max {
		return trans
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i] < entries[j] })
	last := entries[max-1]
	var out []planTransition
	for _, t := range trans {
		if t.entered <= last {
			out = append(out, t)
		}
	}
	return out
}

// planReleaseDue lets the rules release every advisory due by now, each at its own due time.
func planReleaseDue(st alerts.State, now time.Time,
	cfg alerts.RuleConfig) (alerts.State, []alerts.SendAlert) {
	var out []alerts.SendAlert
	for {
		due, ok := alerts.NextDue(st)
		if !ok || due.After(now) {
			return st, out
		}
		var sent []alerts.SendAlert
		st, sent = alerts.Due(st, due, cfg)
		out = append(out, sent...)
	}
}

// planEvents builds the events the nodes' publishers would send for the transitions,
// sorted by event time, with one sequence counter per node.
func planEvents(nodes []events.Node, trans []planTransition) []*events.Event {
	sorted := make([]planTransition, len(trans))
	copy(sorted, trans)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].at < sorted[j].at })
	seq := make([]uint64, len(nodes))
	evs := make([]*events.Event, 0, len(sorted))
	for _, t := range sorted {
		seq[t.node]++
		evs = append(evs, planEvent(nodes[t.node], seq[t.node], t))
	}
	return evs
}

func planEvent(n events.Node, seq uint64, t planTransition) *events.Event {
	at := planEpoch.Add(time.Duration(t.at))
	entered := planEpoch.Add(time.Duration(t.entered))
	tr := &events.StressTransition{Node: n, Episode: events.EpisodeID(n.Cluster, n.Node, entered),
		Entered: entered, PeakDemand: t.peak}
	typ := events.TypeStressEntered
	if t.kind == mta.Exited {
		typ = events.TypeStressExited
		tr.Exited = &at
	}
	return &events.Event{
		Envelope: events.Envelope{
			SpecVersion:     events.SpecVersion,
			ID:              n.Cluster + "." + n.Node + "." + events.FormatSeq(seq),
			Source:          events.Source(n.Cluster, n.Node),
			Type:            typ,
			Time:            at,
			DataContentType: "application/json",
			Sequence:        events.FormatSeq(seq),
		},
		Seq:        seq,
		Transition: tr,
	}
}
