package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

// Address space of the embedded stack (DESIGN.md "The embedded stack").
const (
	LocalDomain  = "example.test"
	SenderDomain = "example.net"
	ValidUsers   = 1000
	// maxSessions bounds one replay, whatever a scenario file asks for.
	maxSessions = 200_000
)

// sessionPlan is one client session, drawn in full before the replay starts so that a seed
// always gives the same traffic, however the server answers.
type sessionPlan struct {
	Index    int
	Phase    int
	Start    time.Duration // intended start, from the start of its phase
	Profile  string
	Node     int
	Client   netip.Addr
	Sender   string // "" for the null sender
	Messages []messagePlan
	Hold     time.Duration // 0: quit when the messages are sent
	Drip     *scenarios.Rate
	Pregreet bool
}

type messagePlan struct {
	ID    string
	Rcpts []string
	Size  int
}

// planPhase draws the sessions of one live phase: open-loop Poisson arrivals whose rate follows
// the scenario (ramps included), by thinning a homogeneous process at the phase's peak rate.
// Starts count from the start of the phase: the replay paces each phase from its own start,
// since a skip before it takes real time that the plan cannot know.
func planPhase(sc *scenarios.Scenario, phase int, phaseStart time.Duration, next int) ([]sessionPlan, error) {
	ph := sc.Phases[phase]
	rng := rand.New(rand.NewPCG(uint64(sc.Seed), uint64(phase)+1))
	peak := ph.Rate
	if phase > 0 && sc.Phases[phase-1].Rate > peak {
		peak = sc.Phases[phase-1].Rate
	}
	if peak <= 0 {
		return nil, nil
	}
	profiles, shares := mixOf(ph.Mix)
	weights := nodeWeights(sc.Topology.Nodes)

	var out []sessionPlan
	t := 0.0
	for {
		t += rng.ExpFloat64() / peak
		at := time.Duration(t * float64(time.Second))
		if at >= ph.Duration {
			return out, nil
		}
		if rng.Float64()*peak > sc.RateAt(phaseStart+at) {
			continue
		}
		if next+len(out) >= maxSessions {
			return nil, fmt.Errorf("scenario asks for more than %d sessions: lower a rate or a duration", maxSessions)
		}
		name := profiles[pick(rng, shares)]
		s := drawSession(rng, sc, sc.Profiles[name], next+len(out))
		s.Phase, s.Start, s.Profile = phase, at, name
		s.Node = pick(rng, weights)
		out = append(out, s)
	}
}

func drawSession(rng *rand.Rand, sc *scenarios.Scenario, p scenarios.Profile, index int) sessionPlan {
	s := sessionPlan{
		Index:    index,
		Client:   clientAddr(profileSlot(sc, p.Name), rng.IntN(max(p.Clients, 1))),
		Drip:     p.Drip,
		Pregreet: p.Pregreet,
	}
	switch p.Sender {
	case "":
		s.Sender = fmt.Sprintf("sender%d@%s", rng.IntN(100000), SenderDomain)
	case "<>":
		s.Sender = ""
	default:
		s.Sender = p.Sender
	}
	if p.Hold != nil {
		s.Hold = drawDur(rng, *p.Hold)
	}
	n := drawInt(rng, p.Messages)
	for m := range n {
		msg := messagePlan{
			ID:   fmt.Sprintf("%s-%d-%d-%d", sc.Name, sc.Seed, index, m),
			Size: int(drawFloat(rng, p.Size.Min, p.Size.Max)),
		}
		for range drawInt(rng, p.Recipients) {
			if rng.Float64() < p.Invalid {
				msg.Rcpts = append(msg.Rcpts, fmt.Sprintf("nobody%d@%s", rng.IntN(1_000_000), LocalDomain))
			} else {
				msg.Rcpts = append(msg.Rcpts, fmt.Sprintf("user%d@%s", 1+rng.IntN(ValidUsers), LocalDomain))
			}
		}
		s.Messages = append(s.Messages, msg)
	}
	return s
}

// clientAddr gives each profile its own block of 127.0.0.0/8, so profiles' clients are distinct
// addresses to the MTA's per-client cap. Host parts avoid .0 and .255.
func clientAddr(profile, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + profile%250), byte(i / 254 % 256), byte(1 + i%254)})
}

// profileSlot is a stable small number per profile name: its rank in sorted order.
func profileSlot(sc *scenarios.Scenario, name string) int {
	names := make([]string, 0, len(sc.Profiles))
	for n := range sc.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return sort.SearchStrings(names, name)
}

// mixOf returns a phase's profiles in a stable order with their shares.
func mixOf(mix map[string]float64) ([]string, []float64) {
	names := make([]string, 0, len(mix))
	for n := range mix {
		names = append(names, n)
	}
	sort.Strings(names)
	shares := make([]float64, len(names))
	for i, n := range names {
		shares[i] = mix[n]
	}
	return names, shares
}

func nodeWeights(nodes []scenarios.Node) []float64 {
	w := make([]float64, len(nodes))
	for i, n := range nodes {
		w[i] = n.Weight
	}
	return w
}

// pick draws an index with probability proportional to its weight.
func pick(rng *rand.Rand, weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	x := rng.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

func drawInt(rng *rand.Rand, r scenarios.IntRange) int {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + rng.IntN(r.Max-r.Min+1)
}

func drawFloat(rng *rand.Rand, lo, hi float64) float64 {
	if hi <= lo {
		return lo
	}
	return lo + rng.Float64()*(hi-lo)
}

func drawDur(rng *rand.Rand, r scenarios.DurRange) time.Duration {
	return time.Duration(math.Round(drawFloat(rng, float64(r.Min), float64(r.Max))))
}
