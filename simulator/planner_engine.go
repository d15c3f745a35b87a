package simulator

import (
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mtastress/mtastress/mta"
)

// The planner's engine: a discrete-event simulation in virtual time. Arrivals come in order
// from a planSource; the only events that need a heap are session ends. Everything else a node
// does between its own events is settled lazily when the node is next touched (catchUp): a
// waiter whose slot wait ran out and a cool-down that ended change nothing another node sees,
// so settling them at the node's next event, at their own times, is exact.
//
// It follows the MTA's slot pool (mta/slots.go) decision by decision: the per-client cap
// first, a free slot only when nobody waits, the waiting line capped at wait_max, first come
// first served, and a slot handed from a closing session straight to the oldest waiter without
// asking the stress machine (active does not change). The stress decisions themselves are
// mta.StepStress's.

// planNoWake marks a node whose stress machine needs no Tick.
const planNoWake = math.MaxInt64

// planEpoch is virtual time zero on the stress machine's and the alert rules' clock. Any fixed
// instant would do; a Monday at midnight UTC keeps the rules' per-day counts tidy.
var planEpoch = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)

// planEpochNS is planEpoch in Unix nanoseconds. The hot loop converts with time.Unix and UnixNano,
// which cost a third of Time.Add and Time.Sub; the location (Local) does not matter to the
// stress machine, which only compares and adds.
var planEpochNS = planEpoch.UnixNano()

// planRules are one candidate node's MTA settings, in virtual nanoseconds.
type planRules struct {
	limit, waitMax, clientCap int
	slotWait                  int64
	cooldown                  time.Duration
	// clients is the size of the per-client index space; 0 when the cap can never bind.
	clients int
}

// planDeparture is a session's end: its slot frees.
type planDeparture struct {
	at     int64
	node   int32
	client int32
}

// planHeap is a 4-ary min-heap of session ends on time. It is written out rather than built
// on container/heap: there every comparison and swap is an interface call the compiler cannot
// inline, and they took a third of the run (docs/planner.md has the figures). Four children
// per node halve the depth, and moving a hole instead of swapping halves the writes.
type planHeap []planDeparture

func (h *planHeap) push(d planDeparture) {
	q := append(*h, d)
	i := len(q) - 1
	for i > 0 {
		parent := (i - 1) / 4
		if q[parent].at <= d.at {
			break
		}
		q[i] = q[parent]
		i = parent
	}
	q[i] = d
	*h = q
}

func (h *planHeap) pop() planDeparture {
	q := *h
	top, last := q[0], q[len(q)-1]
	q = q[:len(q)-1]
	*h = q
	n := len(q)
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c // the earliest child
		if c+3 < n {
			// All four children exist, the usual case. The ends are in random order, so a
			// branch per comparison would mispredict half the time; planLess() selects by sign
			// bit instead, which the compiler cannot turn back into a branch.
			kids := q[c : c+4 : c+4]
			a0, a1, a2, a3 := kids[0].at, kids[1].at, kids[2].at, kids[3].at
			m01 := c + planLess(a1, a0)
			m23 := c + 2 + planLess(a3, a2)
			m = m01 + planLess(min(a2, a3), min(a0, a1))*(m23-m01)
		} else {
			for k := c + 1; k < n; k++ {
				if q[k].at < q[m].at {
					m = k
				}
			}
		}
		if q[m].at >= last.at {
			break
		}
		q[i] = q[m]
		i = m
	}
	q[i] = last
	return top
}

// less is 1 if a < b, else 0, without a branch. Virtual times are far below 2^62, so the
// difference cannot overflow.
func planLess(a, b int64) int { return int(uint64(a-b) >> 63) }

// planWaiter is a session in a node's waiting line.
type planWaiter struct {
	since          int64
	client         int32
	normal, stress int64
}

// planLine is a FIFO ring of waiters. Every waiter of a node has the same slot wait, so the
// head is always the next to run out.
type planLine struct {
	buf        []planWaiter
	head, size int
}

func (q *planLine) push(w planWaiter) {
	if q.size == len(q.buf) {
		grown := make([]planWaiter, max(16, 2*len(q.buf)))
		for i := range q.size {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = w
	q.size++
}

func (q *planLine) front() *planWaiter { return &q.buf[q.head] }

func (q *planLine) pop() planWaiter {
	w := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return w
}

// planTransition is a stress entry or exit of one node, in virtual time.
type planTransition struct {
	node    int
	kind    mta.TransitionKind
	at      int64
	entered int64
	peak    int // most active + waiting in the episode so far
}

// planSimNode is one MTA node of a candidate.
type planSimNode struct {
	idx       int
	rules     planRules
	stress    mta.StressRules
	state     mta.StressState
	wake      int64
	line      planLine
	perClient []int32

	sessions, served, waited, blocked int64
	peakActive, peakDemand, epPeak    int
	episodes                          int
	stressNS                          int64
}

// planEngine runs one candidate.
type planEngine struct {
	nodes     []planSimNode
	heap      planHeap
	waits     *hdrhistogram.Histogram // slot waits of served sessions that waited, in µs
	zeroWaits int64
	trans     []planTransition
}

// newPlanEngine makes an engine with one node per rules.
func newPlanEngine(rules []planRules) *planEngine {
	slots := 0
	for _, r := range rules {
		slots += r.limit
	}
	e := &planEngine{
		nodes: make([]planSimNode, len(rules)),
		heap:  make(planHeap, 0, 2*slots),
		waits: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3),
	}
	for i, r := range rules {
		n := &e.nodes[i]
		n.idx, n.rules, n.wake = i, r, planNoWake
		n.stress = mta.StressRules{Limit: r.limit, Cooldown: r.cooldown}
		if r.clients > 0 {
			n.perClient = make([]int32, r.clients)
		}
	}
	return e
}

// run plays the whole traffic, then lets every session end and every cool-down run out, as a
// replay's end does. A session end and an arrival at the same instant: the end goes first.
func (e *planEngine) run(src planSource) {
	var a planArrival
	more := src.next(&a)
	for more || len(e.heap) > 0 {
		if len(e.heap) > 0 && (!more || e.heap[0].at <= a.at) {
			e.depart(e.heap.pop())
			continue
		}
		e.arrive(&a)
		more = src.next(&a)
	}
	for i := range e.nodes {
		e.catchUp(&e.nodes[i], planNoWake-1)
	}
}

// arrive decides a new connection's fate as slotPool.admit does.
func (e *planEngine) arrive(a *planArrival) {
	n := &e.nodes[a.node]
	e.catchUp(n, a.at)
	n.sessions++
	switch {
	case n.perClient != nil && int(n.perClient[a.client]) >= n.rules.clientCap:
		n.blocked++ // 421 4.7.0: too many connections from the address
		return
	case n.state.Active < n.rules.limit && n.line.size == 0:
		e.count(n, a.client, 1)
		e.grant(n, a.at, a.client, a.normal, a.stress, true)
	case n.line.size >= n.rules.waitMax || n.rules.slotWait <= 0:
		n.blocked++ // 421 4.3.2: all slots busy
	default:
		e.count(n, a.client, 1)
		n.line.push(planWaiter{since: a.at, client: a.client, normal: a.normal, stress: a.stress})
		n.waited++
		n.peakDemand = max(n.peakDemand, n.state.Active+n.line.size)
		if n.state.InStress {
			n.epPeak = max(n.epPeak, n.state.Active+n.line.size)
		}
	}
}

// depart frees a slot, handing it to the oldest waiter if there is one.
func (e *planEngine) depart(d planDeparture) {
	n := &e.nodes[d.node]
	e.catchUp(n, d.at)
	e.count(n, d.client, -1)
	if n.line.size == 0 {
		e.step(n, mta.SlotFreed, d.at)
		return
	}
	w := n.line.pop()
	e.recordWait(d.at - w.since)
	e.grant(n, d.at, w.client, w.normal, w.stress, false)
}

// grant gives a session a slot. A session that starts in stress runs with stress settings; the
// one that takes the last slot started before stress, as in the MTA. step is false for a
// hand-over, which leaves active as it was.
func (e *planEngine) grant(n *planSimNode, now int64, client int32, normal, stress int64,
	step bool) {
	hold := normal
	if n.state.InStress {
		hold = stress
	}
	if step {
		e.step(n, mta.SlotTaken, now)
		e.zeroWaits++
	}
	n.served++
	e.heap.push(planDeparture{at: now + hold, node: int32(n.idx), client: client})
	n.peakActive = max(n.peakActive, n.state.Active)
	n.peakDemand = max(n.peakDemand, n.state.Active+n.line.size)
	if n.state.InStress {
		n.epPeak = max(n.epPeak, n.state.Active+n.line.size)
	}
}

func (e *planEngine) count(n *planSimNode, client int32, delta int32) {
	if n.perClient != nil {
		n.perClient[client] += delta
	}
}

func (e *planEngine) recordWait(ns int64) {
	if ns <= 0 {
		e.zeroWaits++
		return
	}
	_ = e.waits.RecordValue(max(ns/int64(time.Microsecond), 1))
}

// catchUp settles what happened on the node by now at its own time: a cool-down that ran out
// and waiters whose slot wait ended (421 4.3.2). Neither changes the other.
func (e *planEngine) catchUp(n *planSimNode, now int64) {
	for n.wake <= now {
		e.step(n, mta.Tick, n.wake)
	}
	for n.line.size > 0 && n.line.front().since+n.rules.slotWait <= now {
		w := n.line.pop()
		e.count(n, w.client, -1)
		n.blocked++
	}
}

// step feeds the stress machine one input at virtual time now.
func (e *planEngine) step(n *planSimNode, in mta.StressInput, now int64) {
	st, tr, wake := mta.StepStress(n.stress, n.state, in, time.Unix(0, planEpochNS+now))
	n.state = st
	n.wake = planNoWake
	if !wake.IsZero() {
		n.wake = wake.UnixNano() - planEpochNS
	}
	if tr != nil {
		e.transition(n, tr)
	}
}

func (e *planEngine) transition(n *planSimNode, tr *mta.StressTransition) {
	pt := planTransition{node: n.idx, kind: tr.Kind, at: tr.At.UnixNano() - planEpochNS,
		entered: tr.Entered.UnixNano() - planEpochNS}
	switch tr.Kind {
	case mta.Entered:
		n.episodes++
		n.epPeak = n.state.Active + n.line.size
	case mta.Exited:
		n.stressNS += pt.at - pt.entered
	}
	pt.peak = n.epPeak
	e.trans = append(e.trans, pt)
}
