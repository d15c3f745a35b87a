package simulator

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mtastress/mtastress/mta"
)

// planScript is a source of hand-written sessions.
type planScript []planArrival

func (s *planScript) next(a *planArrival) bool {
	if len(*s) == 0 {
		return false
	}
	*a = (*s)[0]
	*s = (*s)[1:]
	return true
}

func planSec(f float64) int64 { return int64(f * float64(time.Second)) }

// session is an arrival at `at` seconds holding hold seconds, or stressHold under stress.
func planSession(at, hold, stressHold float64, client int32) planArrival {
	return planArrival{at: planSec(at), client: client,
		normal: planSec(hold), stress: planSec(stressHold)}
}

func runPlanScript(r planRules, sessions ...planArrival) *planEngine {
	e := newPlanEngine([]planRules{r})
	src := planScript(sessions)
	e.run(&src)
	return e
}

// planOneSlot is a node with one slot and room for everything else to wait.
func planOneSlot() planRules {
	return planRules{limit: 1, waitMax: 10, clientCap: math.MaxInt32, slotWait: planSec(30)}
}

func planTrans(e *planEngine) []planTransition { return e.trans }

func TestPlannerHandOverKeepsTheEpisode(t *testing.T) {
	// The second session waits for the first's slot. At the hand-over active stays at the
	// limit, so even with no cool-down the episode neither ends nor restarts.
	e := runPlanScript(planOneSlot(), planSession(0, 10, 10, 1), planSession(1, 10, 10, 2))
	n := &e.nodes[0]
	if n.episodes != 1 {
		t.Fatalf("%d episodes, want 1: %+v", n.episodes, planTrans(e))
	}
	tr := planTrans(e)
	if len(tr) != 2 || tr[0].at != 0 || tr[1].kind != mta.Exited || tr[1].at != planSec(20) {
		t.Fatalf("transitions %+v, want entry at 0 and exit at 20 s", tr)
	}
	if n.waited != 1 || n.blocked != 0 || n.served != 2 {
		t.Errorf("waited %d blocked %d served %d, want 1 0 2", n.waited, n.blocked, n.served)
	}
	if got := time.Duration(n.stressNS); got != 20*time.Second {
		t.Errorf("time in stress %v, want 20s", got)
	}
	if got := planP99WaitMS(e); math.Abs(got-9000) > 10 {
		t.Errorf("p99 wait %.1f ms, want 9000 (the waiter's 9 s)", got)
	}
}

func TestPlannerSessionsStartedInStressHoldShorter(t *testing.T) {
	// The first session takes the last slot before stress: it keeps its 10 s. The second is
	// handed the slot in stress and runs with the 2 s of stress settings.
	e := runPlanScript(planOneSlot(), planSession(0, 10, 2, 1), planSession(1, 10, 2, 2))
	tr := planTrans(e)
	if len(tr) != 2 || tr[1].at != planSec(12) {
		t.Fatalf("transitions %+v, want the exit at 12 s", tr)
	}
}

func TestPlannerWaitRunsOutWith421(t *testing.T) {
	r := planOneSlot()
	r.slotWait = planSec(5)
	e := runPlanScript(r, planSession(0, 10, 10, 1), planSession(1, 1, 1, 2))
	n := &e.nodes[0]
	if n.blocked != 1 || n.waited != 1 || n.served != 1 {
		t.Fatalf("blocked %d waited %d served %d, want 1 1 1", n.blocked, n.waited, n.served)
	}
}

func TestPlannerWaitingLineIsCapped(t *testing.T) {
	r := planOneSlot()
	r.waitMax = 1
	e := runPlanScript(r, planSession(0, 10, 10, 1), planSession(1, 1, 1, 2), planSession(2, 1, 1, 3))
	n := &e.nodes[0]
	if n.blocked != 1 || n.waited != 1 || n.served != 2 {
		t.Fatalf("blocked %d waited %d served %d, want 1 1 2", n.blocked, n.waited, n.served)
	}
}

func TestPlannerPerClientCap(t *testing.T) {
	r := planRules{limit: 10, waitMax: 40, clientCap: 1, slotWait: planSec(30), clients: 4}
	e := runPlanScript(r, planSession(0, 5, 5, 1), planSession(1, 5, 5, 1), planSession(2, 5, 5, 2),
		planSession(6, 5, 5, 1))
	n := &e.nodes[0]
	// The second session of client 1 finds it holding a slot; the last comes after it left.
	if n.blocked != 1 || n.served != 3 {
		t.Fatalf("blocked %d served %d, want 1 3", n.blocked, n.served)
	}
}

func TestPlannerCooldownJoinsEpisodes(t *testing.T) {
	r := planOneSlot()
	r.cooldown = 5 * time.Second
	// Full at 0..1 s and again at 3..4 s, inside the cool-down: one episode, ending at 9 s.
	// Full again at 20 s: a second one.
	e := runPlanScript(r, planSession(0, 1, 1, 1), planSession(3, 1, 1, 1), planSession(20, 1, 1, 1))
	tr := planTrans(e)
	if e.nodes[0].episodes != 2 || tr[1].at != planSec(9) || tr[2].at != planSec(20) {
		t.Fatalf("transitions %+v, want an episode 0..9 s and one from 20 s", tr)
	}
}

func TestPlannerHeapOrdersSessionEnds(t *testing.T) {
	// Interleaved pushes and pops against a sorted model, through heaps of every small size
	// and past the four-children fast path.
	rng := rand.New(rand.NewPCG(1, 2))
	var h planHeap
	var model []int64
	for step := range 20000 {
		if len(model) == 0 || rng.IntN(3) > 0 || step > 15000 && rng.IntN(2) == 0 {
			at := rng.Int64N(1000)
			h.push(planDeparture{at: at})
			model = append(model, at)
			slices.Sort(model)
			continue
		}
		if got := h.pop().at; got != model[0] {
			t.Fatalf("step %d: popped %d, want %d", step, got, model[0])
		}
		model = model[1:]
	}
	for len(model) > 0 {
		if got := h.pop().at; got != model[0] {
			t.Fatalf("draining: popped %d, want %d", got, model[0])
		}
		model = model[1:]
	}
}

func TestPlannerEpisodesPerWeek(t *testing.T) {
	day := int64(24 * time.Hour)
	if got := planEpisodesPerWeek(nil, 1, 7*time.Hour); got != 24 {
		t.Errorf("1 episode in 7 h: %g a week, want 24", got)
	}
	entries := []planTransition{
		{kind: mta.Entered, at: 0}, {kind: mta.Entered, at: 6 * day},
		{kind: mta.Exited, at: 6*day + 1}, {kind: mta.Entered, at: 14 * day},
	}
	if got := planEpisodesPerWeek(entries, 3, 21*24*time.Hour); got != 2 {
		t.Errorf("three weeks with entries on days 0, 6 and 14: %g in the worst week, want 2", got)
	}
}

func TestPlannerRecommendsFewestSlotsThenFewerNodes(t *testing.T) {
	cands := []PlanCandidate{
		{Model: "T10", ProcessLimit: 10, Nodes: 1},
		{Model: "T25", ProcessLimit: 25, Nodes: 2, Qualifies: true},
		{Model: "T50", ProcessLimit: 50, Nodes: 1, Qualifies: true},
		{Model: "T100", ProcessLimit: 100, Nodes: 1, Qualifies: true},
	}
	if got := recommendPlan(cands); got == nil || *got != (Recommendation{Model: "T50", Nodes: 1}) {
		t.Fatalf("recommend = %+v, want T50 × 1 (50 slots, fewer nodes than T25 × 2)", got)
	}
	if got := recommendPlan(cands[:1]); got != nil {
		t.Fatalf("recommend with nothing qualifying = %+v, want nil", got)
	}
}
