package simulator

import (
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/scenarios"
)

// The planner's traffic is the replay's traffic: for each live phase it makes the same random
// draws, in the same order and from the same seed, as planPhase and drawSession. A seed thus
// gives the planner exactly the sessions (start, profile, hold, client, node) that a live replay
// sends, which keeps the planner-versus-replay comparison about the model and not about luck.
// It draws into plain numbers instead of strings, so a session costs no allocation.
// TestPlannerTrafficMatchesReplay holds the two side by side.

// DefaultPerMessage is how long the planner lets a session take per message when the profile
// sets no hold: EHLO, MAIL, RCPT, DATA and the reply, at a LAN's round trip plus the spool's
// fsync. A profile with a hold keeps its slot for the hold anyway.
const DefaultPerMessage = 20 * time.Millisecond

// planAddrBlock is how many client addresses of one profile clientAddr tells apart: its host part
// repeats after 254 × 256 indexes. The planner's per-client cap counts the same addresses.
const planAddrBlock = 254 * 256

// planArrival is one session as the engine sees it. Times are virtual nanoseconds since the start
// of the scenario.
type planArrival struct {
	at     int64
	node   int32
	client int32 // index into the node's per-client counts
	// normal and stress are how long the session holds its slot when it starts outside or
	// inside stress: stress settings cut its idle wait to the stress command timeout.
	normal, stress int64
}

// planSource hands the engine its sessions in order of arrival.
type planSource interface {
	// next fills a with the next session and reports false when the traffic has ended.
	next(a *planArrival) bool
}

// planTiming turns what a session does into how long it holds a slot, under the MTA's
// normal and stress command timeouts.
type planTiming struct {
	perMessage                    int64
	commandTimeout, stressTimeout int64
	minDataRate                   float64 // bytes per second; 0: no minimum
	// hardErrors and stressHardErrors: the MTA closes a session at its hard error limit, and
	// each refused recipient is an error (550 5.1.1); in stress the limit is 1.
	hardErrors, stressHardErrors int
}

func newPlanTiming(sc *scenarios.Scenario, perMessage time.Duration) planTiming {
	def := mta.DefaultConfig()
	tm := planTiming{
		perMessage:     int64(perMessage),
		commandTimeout: int64(def.CommandTimeout),
		stressTimeout:  int64(def.StressCommandTimeout),
		minDataRate:    float64(def.MinDataRate),

		hardErrors:       def.HardErrorLimit,
		stressHardErrors: def.StressHardErrorLimit,
	}
	if sc.MTA.StressTimeout != nil {
		tm.stressTimeout = int64(*sc.MTA.StressTimeout)
	}
	return tm
}

// planSpan accumulates one session's time in its slot under one timeout and error limit.
type planSpan struct {
	d    int64
	cut  bool // the MTA closed the session (a timeout, the error limit): nothing after it counts
	errs int  // error replies so far
}

// refused counts a message's refused recipients and reports whether the message goes on to
// its data. At the hard error limit the MTA answers 421 and closes: the session ends inside
// the message, which counts as a whole message's time (its commands up to the refusal).
// A message whose recipients were all refused ends with RSET, no data.
//
// TODO: the RSET after an all-refused message counts toward the junk limit (100) too; a
// session of more than 99 such messages would be cut there in a live run.
func (s *planSpan) refused(n, of, limit int, perMessage int64) bool {
	if s.cut {
		return false
	}
	s.d += perMessage
	if s.errs += n; n > 0 && s.errs >= limit {
		s.cut = true
		return false
	}
	return n < of
}

// addData adds one message's data phase. A drip slower than the MTA's minimum data rate runs
// into the DATA deadline, which grows only by bytes/MinDataRate: at drip rate r the deadline
// overtakes the client after timeout / (1 − r/MinDataRate). A gap between writes longer than
// the timeout is cut at the timeout.
func (s *planSpan) addData(data int64, drip *scenarios.Rate, timeout int64, minRate float64) {
	if s.cut {
		return
	}
	limit := int64(-1)
	rate := float64(drip.BytesPer) / drip.Per.Seconds()
	switch {
	case int64(drip.Per) > timeout:
		limit = timeout
	case minRate > 0 && rate < minRate:
		limit = int64(float64(timeout) / (1 - rate/minRate))
	}
	if limit >= 0 && data > limit {
		s.d, s.cut = s.d+limit, true
		return
	}
	s.d += data
}

// idle adds the silent rest of a hold, which the command timeout cuts.
func (s *planSpan) idle(hold, timeout int64) {
	if s.cut || hold <= s.d {
		return
	}
	s.d += min(hold-s.d, timeout)
}

// planProfile is what the planner keeps of one profile, resolved once.
type planProfile struct {
	p       scenarios.Profile
	clients int   // rng.IntN bound, as drawSession uses
	base    int32 // first per-client index of the profile's address block
}

// planPhaseDraw is one phase, resolved once.
type planPhaseDraw struct {
	start, dur, ramp int64 // virtual ns
	from, rate, peak float64
	profiles         []int // indexes into planTraffic.profiles, in mixOf order
	shares           []float64
	skip             bool
}

// planTraffic draws a scenario's sessions for one candidate.
type planTraffic struct {
	sc       *scenarios.Scenario
	timing   planTiming
	profiles []planProfile
	phases   []planPhaseDraw
	weights  []float64 // the candidate's balancer weights, one per node
	clients  int       // size of the per-client index space

	phase int
	t     float64 // seconds into the phase
	rng   *rand.Rand
	pcg   *rand.PCG
}

func newPlanTraffic(sc *scenarios.Scenario, tm planTiming, weights []float64) *planTraffic {
	tr := &planTraffic{sc: sc, timing: tm, weights: weights, phase: -1}
	index := map[string]int{}
	maxSlot := 0
	for _, name := range planProfileNames(sc) {
		p := sc.Profiles[name]
		// clientAddr folds the profile's rank into 250 blocks; so does the index here.
		slot := profileSlot(sc, name) % 250
		maxSlot = max(maxSlot, slot)
		index[name] = len(tr.profiles)
		tr.profiles = append(tr.profiles, planProfile{p: p, clients: max(p.Clients, 1),
			base: int32(slot * planAddrBlock)})
	}
	tr.clients = (maxSlot + 1) * planAddrBlock
	var start int64
	for i, ph := range sc.Phases {
		pd := planPhaseDraw{start: start, dur: int64(ph.Duration), ramp: int64(ph.Ramp), rate: ph.Rate}
		pd.peak = ph.Rate
		if i > 0 {
			pd.from = sc.Phases[i-1].Rate
			pd.peak = max(pd.peak, pd.from)
		}
		// A phase with no rate sends nothing, as in planPhase: it only lets time pass.
		pd.skip = ph.Skip || pd.peak <= 0
		names, shares := mixOf(ph.Mix)
		for _, n := range names {
			pd.profiles = append(pd.profiles, index[n])
		}
		pd.shares = shares
		tr.phases = append(tr.phases, pd)
		start += int64(ph.Duration)
	}
	tr.pcg = rand.NewPCG(0, 0)
	tr.rng = rand.New(tr.pcg)
	return tr
}

func planProfileNames(sc *scenarios.Scenario) []string {
	return slices.Sorted(maps.Keys(sc.Profiles))
}

// next draws the next session, moving through the phases as they end. A skip phase draws
// nothing: its time passes with no traffic.
func (tr *planTraffic) next(a *planArrival) bool {
	for {
		if tr.phase >= len(tr.phases) {
			return false
		}
		if tr.phase < 0 || tr.phases[tr.phase].skip {
			if !tr.enter(tr.phase + 1) {
				return false
			}
			continue
		}
		ph := &tr.phases[tr.phase]
		tr.t += tr.rng.ExpFloat64() / ph.peak
		at := int64(time.Duration(tr.t * float64(time.Second)))
		if at >= ph.dur {
			if !tr.enter(tr.phase + 1) {
				return false
			}
			continue
		}
		// Thinning: keep the arrival with probability rate(at)/peak, as planPhase does.
		if tr.rng.Float64()*ph.peak > ph.rateAt(at) {
			continue
		}
		tr.draw(ph, at, a)
		return true
	}
}

// enter starts phase i with planPhase's seed for it; false past the last phase.
func (tr *planTraffic) enter(i int) bool {
	tr.phase, tr.t = i, 0
	if i >= len(tr.phases) {
		return false
	}
	tr.pcg.Seed(uint64(tr.sc.Seed), uint64(i)+1)
	return true
}

// rateAt is Scenario.RateAt inside the phase, with the same arithmetic so that thinning keeps
// exactly the arrivals planPhase keeps, without a search through the phases.
func (ph *planPhaseDraw) rateAt(into int64) float64 {
	if into >= ph.ramp {
		return ph.rate
	}
	return ph.from + (ph.rate-ph.from)*float64(into)/float64(ph.ramp)
}

// draw fills a with one session, consuming the random numbers drawSession and planPhase
// consume, in their order, including those for strings the planner does not need.
func (tr *planTraffic) draw(ph *planPhaseDraw, at int64, a *planArrival) {
	rng := tr.rng
	pd := &tr.profiles[ph.profiles[planPick(rng, ph.shares)]]
	p := &pd.p
	client := rng.IntN(pd.clients)
	if p.Sender == "" {
		rng.IntN(100000) // the random sender's number
	}
	var hold int64
	if p.Hold != nil {
		hold = int64(drawDur(rng, *p.Hold))
	}
	tm := &tr.timing
	normal, stress := planSpan{}, planSpan{}
	for range drawInt(rng, p.Messages) {
		size := int(drawFloat(rng, p.Size.Min, p.Size.Max))
		rcpts, refused := drawInt(rng, p.Recipients), 0
		for range rcpts {
			if rng.Float64() < p.Invalid {
				rng.IntN(1_000_000)
				refused++
			} else {
				rng.IntN(ValidUsers)
			}
		}
		normalData := normal.refused(refused, rcpts, tm.hardErrors, tm.perMessage)
		stressData := stress.refused(refused, rcpts, tm.stressHardErrors, tm.perMessage)
		if p.Drip != nil {
			data := int64(float64(size) / float64(p.Drip.BytesPer) * float64(p.Drip.Per))
			if normalData {
				normal.addData(data, p.Drip, tm.commandTimeout, tm.minDataRate)
			}
			if stressData {
				stress.addData(data, p.Drip, tm.stressTimeout, tm.minDataRate)
			}
		}
	}
	normal.idle(hold, tm.commandTimeout)
	stress.idle(hold, tm.stressTimeout)

	a.at = ph.start + at
	a.node = int32(planPick(rng, tr.weights))
	a.client = pd.base + int32(client%planAddrBlock)
	a.normal, a.stress = normal.d, stress.d
}

// planPick is pick, with the common case of one choice short-cut: pick still draws a number
// then, and so does planPick, to keep the stream in step with the replay's.
func planPick(rng *rand.Rand, weights []float64) int {
	if len(weights) == 1 {
		rng.Float64()
		return 0
	}
	return pick(rng, weights)
}
