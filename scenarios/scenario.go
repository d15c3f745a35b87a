package scenarios

import "time"

// Scenario is a parsed, validated scenario file. Every value is resolved:
// defaults filled in, model limits looked up, mixes normalised.
type Scenario struct {
	File        string // the path given, "builtin:<name>" for built-ins, or ""
	Name        string
	Description string
	Seed        int64 // 1 when the file has none
	MTA         MTAOverrides
	Models      map[string]int // the file's `models:` overrides, nil if none
	Topology    Topology
	Profiles    map[string]Profile
	Phases      []Phase
	Expect      []Expectation
}

// MTAOverrides are the MTA settings a scenario depends on. Nil means the
// MTA's own default.
type MTAOverrides struct {
	SlotWait, Cooldown, StressTimeout *time.Duration
	WaitMax, ClientCap                *int
}

// Topology is one cluster of nodes behind a load balancer.
type Topology struct {
	Cluster string
	Nodes   []Node
}

// Node is one MTA of the scenario.
type Node struct {
	Name         string
	Model        string
	Weight       float64 // relative share of sessions the balancer sends here
	ProcessLimit int     // the model's limit, after the file's overrides
}

// IntRange is an inclusive range of whole numbers, drawn uniformly.
type IntRange struct{ Min, Max int }

// FloatRange is an inclusive range of reals, drawn uniformly (sizes, bytes).
type FloatRange struct{ Min, Max float64 }

// DurRange is an inclusive range of durations, drawn uniformly.
type DurRange struct{ Min, Max time.Duration }

// Rate is a data rate: BytesPer bytes every Per ("1B/2s").
type Rate struct {
	BytesPer int
	Per      time.Duration
}

// Profile is how one client session behaves.
type Profile struct {
	Name       string
	Messages   IntRange   // messages per session, default 1
	Recipients IntRange   // recipients per message, default 1
	Size       FloatRange // message size in bytes, default 2 KiB
	Sender     string     // "" = a random @example.net address; "<>" = null sender
	Invalid    float64    // share of recipients outside the valid users, 0..1
	Clients    int        // distinct client addresses from 127.0.0.0/8, default 1000
	Hold       *DurRange  // how long the session keeps its slot; nil = quit when done
	Drip       *Rate      // message data rate; nil = full speed
	Pregreet   bool       // talk before the greeting, as bots do
}

// Phase is a stretch of the scenario with one arrival rate and mix.
type Phase struct {
	Name     string
	Duration time.Duration
	Rate     float64            // sessions per second (Poisson); 0 in skip phases
	Ramp     time.Duration      // first part of Duration, rising from the previous rate
	Mix      map[string]float64 // profile name → share, summing to 1; nil in skip phases
	Skip     bool               // advance the shared clock without traffic
}

// TotalDuration is the scenario's length on the shared clock, skips
// included.
func (s *Scenario) TotalDuration() time.Duration {
	var d time.Duration
	for _, ph := range s.Phases {
		d += ph.Duration
	}
	return d
}

// LiveDuration is how long the scenario sends traffic in real time.
func (s *Scenario) LiveDuration() time.Duration {
	var d time.Duration
	for _, ph := range s.Phases {
		if !ph.Skip {
			d += ph.Duration
		}
	}
	return d
}

// PhaseAt returns the index of the phase running at offset t into the
// scenario (skips counted as time) and how far into that phase t is.
// ok is false outside the scenario.
func (s *Scenario) PhaseAt(t time.Duration) (i int, into time.Duration, ok bool) {
	var start time.Duration
	for i, ph := range s.Phases {
		if t >= start && t < start+ph.Duration {
			return i, t - start, true
		}
		start += ph.Duration
	}
	return 0, 0, false
}

// RateAt is the arrival rate, in sessions per second, at offset t into the
// scenario. During a phase's ramp it rises linearly from the previous
// phase's rate (0 before the first phase and after a skip, which sends
// nothing). It is 0 in skip phases and outside the scenario.
func (s *Scenario) RateAt(t time.Duration) float64 {
	i, into, ok := s.PhaseAt(t)
	if !ok || s.Phases[i].Skip {
		return 0
	}
	ph := s.Phases[i]
	if into >= ph.Ramp {
		return ph.Rate
	}
	from := 0.0
	if i > 0 {
		from = s.Phases[i-1].Rate
	}
	return from + (ph.Rate-from)*float64(into)/float64(ph.Ramp)
}

// Node returns the node called name.
func (s *Scenario) Node(name string) (Node, bool) { return findNode(s.Topology, name) }
