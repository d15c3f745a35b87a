package scenarios

import (
	"testing"
	"time"
)

// The built-ins must pass on a loaded two-core CI machine, so their traffic is sized with wide
// margins: a node meant to enter stress is asked for at least twice its slots, and a node
// meant to stay out of it for at most half of them. These tests check that arithmetic on the
// files themselves, so that an edit which makes a scenario borderline fails here, at once,
// rather than as a flaky replay.

// Margins of the sizing rule above.
const (
	stressMargin = 2.0 // a stressed node is asked for at least this many times its limit
	quietMargin  = 0.5 // a quiet node is asked for at most this share of its limit
)

// builtinShapes says, per built-in, which nodes a burst must push far over their limit, which
// must stay far under it, and how many separate bursts (between skips) there are.
var builtinShapes = map[string]struct {
	stressed, quiet []string
	bursts          int
}{
	"steady-baseline":   {quiet: []string{"edge-1"}},
	"directory-harvest": {quiet: []string{"edge-1"}},
	"spam-burst":        {stressed: []string{"edge-1"}, bursts: 1},
	"botnet-flood":      {stressed: []string{"edge-1"}, bursts: 1},
	"slowloris":         {stressed: []string{"edge-1"}, bursts: 1},
	"backscatter-storm": {stressed: []string{"edge-1"}, bursts: 1},
	"weekly-repeat":     {stressed: []string{"edge-1"}, bursts: 2},
	"cluster-imbalance": {stressed: []string{"mx-1"}, quiet: []string{"mx-2", "mx-3"}, bursts: 2},
	"cluster-capacity":  {stressed: []string{"mx-1", "mx-2", "mx-3"}, bursts: 2},
}

func TestBuiltinShapesCoverTheLibrary(t *testing.T) {
	for _, info := range Builtins() {
		if _, ok := builtinShapes[info.Name]; !ok {
			t.Errorf("built-in %s has no entry in builtinShapes: say which nodes it stresses", info.Name)
		}
	}
}

func TestBuiltinDemandHasMargins(t *testing.T) {
	for name, shape := range builtinShapes {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, node := range shape.stressed {
				n := mustNode(t, s, node)
				if peak := peakDemand(s, n); peak < stressMargin*float64(n.ProcessLimit) {
					t.Errorf("%s is asked for %.1f slots at most; want at least %.0f× its limit of %d",
						node, peak, stressMargin, n.ProcessLimit)
				}
			}
			for _, node := range shape.quiet {
				n := mustNode(t, s, node)
				if peak := peakDemand(s, n); peak > quietMargin*float64(n.ProcessLimit) {
					t.Errorf("%s is asked for %.1f slots at its peak; want at most %.0f%% of its limit of %d",
						node, peak, 100*quietMargin, n.ProcessLimit)
				}
			}
		})
	}
}

// TestBuiltinAlertsMatchTheirBursts checks that each scenario's alert expectations follow from
// its shape: one "MTA Stress" mail per stressed node and burst, and a "Frequent MTA Stress"
// advisory exactly when two bursts fall within a week on the shared clock.
func TestBuiltinAlertsMatchTheirBursts(t *testing.T) {
	for name, shape := range builtinShapes {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			starts := burstStarts(s)
			if len(starts) != shape.bursts {
				t.Fatalf("%d bursts (at %v), want %d", len(starts), starts, shape.bursts)
			}
			wantFrequent := 0
			if len(starts) == 2 && starts[1]-starts[0] < 7*24*time.Hour {
				wantFrequent = 1
			}
			stress, stressTotal, frequent := alertCounts(s)
			for _, node := range shape.stressed {
				if got, ok := stress[node]; ok && got != shape.bursts {
					t.Errorf("expects %d stress alerts on %s; its shape gives one per burst: %d", got, node, shape.bursts)
				}
			}
			for _, node := range shape.quiet {
				if got := stress[node]; got != 0 {
					t.Errorf("expects %d stress alerts on %s, which stays under its limit", got, node)
				}
			}
			if want := len(shape.stressed) * shape.bursts; stressTotal >= 0 && stressTotal != want {
				t.Errorf("expects %d stress alerts in all; its shape gives %d", stressTotal, want)
			}
			// Every built-in states the advisories it expects, none included: a stray one is a
			// failure an operator would notice.
			if frequent != wantFrequent {
				t.Errorf("expects %d frequent advisories over the cluster (-1: not stated); bursts at %v give %d",
					frequent, starts, wantFrequent)
			}
		})
	}
}

// TestBuiltinDrainsAreShort checks the settings that decide how long a replay's end waits:
// every waiting client may wait up to slot_wait, and a node leaves stress only a cool-down
// after its last full house.
func TestBuiltinDrainsAreShort(t *testing.T) {
	for _, info := range Builtins() {
		s, err := Builtin(info.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.MTA.Cooldown == nil || *s.MTA.Cooldown > 5*time.Second {
			t.Errorf("%s: cooldown %v; want one of at most 5s in its mta block (the default 30s outlasts the CI budget)",
				info.Name, s.MTA.Cooldown)
		}
		if s.MTA.SlotWait != nil && *s.MTA.SlotWait > 20*time.Second {
			t.Errorf("%s: slot_wait %v; want at most 20s", info.Name, *s.MTA.SlotWait)
		}
	}
}

func mustNode(t *testing.T, s *Scenario, name string) Node {
	t.Helper()
	n, ok := s.Node(name)
	if !ok {
		t.Fatalf("no node %s in the topology", name)
	}
	return n
}

// peakDemand is the most slots any live phase asks of node n at its full rate: arrivals per
// second times the seconds each session holds its slot, by Little's law. Sessions without a
// hold or a drip last milliseconds and count as nothing.
func peakDemand(s *Scenario, n Node) float64 {
	var weights float64
	for _, m := range s.Topology.Nodes {
		weights += m.Weight
	}
	var peak float64
	for _, ph := range s.Phases {
		var d float64
		for prof, share := range ph.Mix {
			d += ph.Rate * share * n.Weight / weights * meanHold(s.Profiles[prof]).Seconds()
		}
		peak = max(peak, d)
	}
	return peak
}

// meanHold is how long a session of p keeps its slot on average: its hold, or the time its
// dripped messages take if that is longer.
func meanHold(p Profile) time.Duration {
	var hold time.Duration
	if p.Hold != nil {
		hold = (p.Hold.Min + p.Hold.Max) / 2
	}
	if p.Drip != nil {
		msgs := float64(p.Messages.Min+p.Messages.Max) / 2
		bytes := msgs * (p.Size.Min + p.Size.Max) / 2
		drip := time.Duration(bytes / float64(p.Drip.BytesPer) * float64(p.Drip.Per))
		hold = max(hold, drip)
	}
	return hold
}

// burstStarts lists, on the shared clock, where each run of phases that over-asks some node
// begins; a skip ends a run.
func burstStarts(s *Scenario) []time.Duration {
	var starts []time.Duration
	var at time.Duration
	in := false
	for _, ph := range s.Phases {
		if ph.Skip {
			in = false
		} else if overAsks(s, ph) && !in {
			starts, in = append(starts, at), true
		}
		at += ph.Duration
	}
	return starts
}

func overAsks(s *Scenario, ph Phase) bool {
	one := &Scenario{Topology: s.Topology, Profiles: s.Profiles, Phases: []Phase{ph}}
	for _, n := range s.Topology.Nodes {
		if peakDemand(one, n) >= stressMargin*float64(n.ProcessLimit) {
			return true
		}
	}
	return false
}

// alertCounts reads the alert expectations: stress counts by node, and the counts over the
// whole cluster of stress alerts and of advisories, each -1 when no expectation states it.
func alertCounts(s *Scenario) (stress map[string]int, stressTotal, frequent int) {
	stress, stressTotal, frequent = make(map[string]int), -1, -1
	for _, e := range s.Expect {
		if e.Kind != KindAlert || e.Diagnosis != "" {
			continue
		}
		switch {
		case e.Node != "" && e.Alert == AlertStress:
			stress[e.Node] = e.Count
		case e.Node == "" && e.Alert == AlertStress:
			stressTotal = e.Count
		case e.Node == "" && e.Alert == AlertFrequent:
			frequent = e.Count
		}
	}
	return stress, stressTotal, frequent
}
