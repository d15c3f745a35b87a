// Package alerts turns the MTA nodes' load and stress events into email for operators: one
// "MTA Stress" email per stress episode, and a "Frequent MTA Stress" advisory with a diagnosis
// when a node enters stress twice in a rolling week.
//
// The rules are pure functions (Apply, Due) over a State, deciding on event time only; the
// virtual-time planner calls them directly. Service feeds them from JetStream durable consumers,
// keeps State in a KV bucket and sends what they decide through Mailer.
package alerts

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
)

// Alert kinds, as the replay report names them.
const (
	KindStress   = "stress"
	KindFrequent = "frequent"
)

// Diagnoses of a frequent advisory (DESIGN.md, "Alerts").
const (
	DiagStandalone    = "standalone"
	DiagLoadBalancing = "load-balancing"
	DiagCapacity      = "capacity"
	DiagPartial       = "partial"
)

// Stream kinds for de-duplication: sequences are per source across both types, but the two
// streams are consumed separately, so each keeps its own order.
const (
	kindStress = "stress"
	kindLoad   = "load"
)

const (
	// FutureLimit: an event further ahead of the consumer's clock than this is set aside.
	// Nodes run NTP, so such an event comes from a broken clock.
	FutureLimit = 5 * time.Minute
	// DefaultSettle is how long a frequent advisory waits for siblings' entries from the same
	// burst before it is diagnosed.
	DefaultSettle = 2 * time.Minute
)

// Catalog is what the rules need of the model catalog; *scenarios.Catalog satisfies it.
type Catalog interface {
	Next(name string) (scenarios.Model, bool)
	Covering(demand int) (scenarios.Model, bool)
}

// RuleConfig holds the rules' settings.
type RuleConfig struct {
	// Settle is the settle window of the frequency rule, used as is (0 diagnoses at once).
	Settle time.Duration
	// Catalog names the model to advise; nil leaves the advice without a model.
	Catalog Catalog
	// Rosters lists a cluster's nodes by cluster name. A cluster without a list has as roster
	// the nodes that sent samples or entries in the week.
	Rosters map[string][]string
	// MaxAlertAge: an entry older than this when it is applied is recorded and counted, but
	// mailed neither as a stress alert nor as an advisory's trigger, so that a service started
	// on a week of history (a first start, a lost bucket) does not mail it all. 0: no limit.
	MaxAlertAge time.Duration
}

// Outcome says what Apply did with an event.
type Outcome int

const (
	Applied   Outcome = iota
	Duplicate         // its sequence was applied before
	Future            // more than FutureLimit ahead of now: set aside
	Stale             // older than the week before the newest event: it no longer counts
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Future:
		return "future"
	case Stale:
		return "stale"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// SendAlert is the one action of the rules: an email to send, rendered in full so that what
// the outbox holds is exactly what goes out, whoever sends it.
type SendAlert struct {
	Kind string `json:"kind"`
	// Key identifies the alert: the episode id for a stress alert,
	// "frequent:<cluster>:<node|*>:<trigger Unix nanoseconds>" for an advisory.
	Key       string    `json:"key"`
	Node      string    `json:"node"` // empty for a cluster-wide advisory
	Cluster   string    `json:"cluster"`
	Diagnosis string    `json:"diagnosis,omitempty"`
	Date      time.Time `json:"date"` // the event time the alert is about
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	HTML      string    `json:"html"`
	MessageID string    `json:"message_id"`
}

// Apply applies one event. It decides on the event's time; now only sets aside events from the
// future. Apply may change st's maps in place: callers keep only the returned State.
func Apply(st State, ev *events.Event, now time.Time, cfg RuleConfig) (
	State, []SendAlert, Outcome,
) {
	if ev.Time.After(now.Add(FutureLimit)) {
		return st, nil, Future
	}
	if !st.Latest.IsZero() && ev.Time.Before(st.Latest.Add(-Week)) {
		return st, nil, Stale
	}
	kind := kindStress
	if ev.Sample != nil {
		kind = kindLoad
	}
	if st.seen(ev.Source, kind, ev.Seq) {
		return st, nil, Duplicate
	}
	if ev.Time.After(st.Latest) {
		st.Latest = ev.Time
	}
	if st.Latest.Sub(st.Trimmed) >= time.Hour {
		st.trim(st.Latest.Add(-keepFor))
		st.Trimmed = st.Latest
	}

	// Entries before quiet are history, not news.
	var quiet time.Time
	if cfg.MaxAlertAge > 0 {
		quiet = now.Add(-cfg.MaxAlertAge)
	}
	var out []SendAlert
	switch {
	case ev.Transition != nil:
		out = st.applyTransition(ev, cfg, quiet)
	case ev.Sample != nil:
		out = st.applySample(ev, cfg, quiet)
	}
	return st, out, Applied
}

// applyTransition records an entry or an exit. An entry raises the stress alert; an exit never
// does, but an exit of an episode never seen still counts as an entry for the weekly rule.
func (st *State) applyTransition(ev *events.Event, cfg RuleConfig, quiet time.Time) []SendAlert {
	t := ev.Transition
	n := st.node(t.Cluster, t.Node.Node)
	n.learn(t.Node)
	at := t.Entered
	if at.IsZero() {
		at = ev.Time
	}
	e, isNew := n.observe(Entry{Episode: t.Episode, At: at, Peak: t.PeakDemand})
	if isNew {
		st.checkFrequent(n, e.At, cfg, quiet)
	}
	if ev.Type != events.TypeStressEntered {
		return nil
	}
	return st.raiseStress(n, e, quiet)
}

// applySample keeps the roster, the sessions served and the peaks, and catches a lost entry: a
// sample in stress whose episode has no alert yet raises it.
func (st *State) applySample(ev *events.Event, cfg RuleConfig, quiet time.Time) []SendAlert {
	s := ev.Sample
	n := st.node(s.Cluster, s.Node.Node)
	n.learn(s.Node)
	n.count(ev.Time, s.SessionsServed)
	if !s.Stress || s.Episode == "" {
		return nil
	}
	at := enteredAt(s.Episode, ev.Time)
	e, isNew := n.observe(Entry{Episode: s.Episode, At: at, Peak: s.PeakDemand})
	if isNew {
		st.checkFrequent(n, e.At, cfg, quiet)
	}
	return st.raiseStress(n, e, quiet)
}

// learn keeps the node's model and limit current.
func (n *NodeState) learn(d events.Node) {
	n.Model, n.Limit = d.Model, d.Limit
}

// count adds the sessions served since the previous sample. Counters are cumulative since the
// node started: a drop means a restart, and the first sample is only a baseline.
func (n *NodeState) count(at time.Time, served uint64) {
	if !at.After(n.LastSample) {
		return // an older sample, out of order: its counter says nothing new
	}
	if !n.LastSample.IsZero() {
		delta := served
		if served >= n.Counter {
			delta = served - n.Counter
		}
		n.addServed(at, delta)
	}
	n.LastSample, n.Counter = at, served
}

// observe records what an event says of an episode and returns its entry, and whether it is new.
func (n *NodeState) observe(e Entry) (Entry, bool) {
	if i := n.entry(e.Episode); i >= 0 {
		n.Entries[i].Peak = max(n.Entries[i].Peak, e.Peak)
		return n.Entries[i], false
	}
	n.addEntry(e)
	return e, true
}

// enteredAt reads the entry time from an episode id (<cluster>.<node>.<Unix nanoseconds>), so an
// alert raised from a sample says the same as one raised from the transition.
func enteredAt(episode string, fallback time.Time) time.Time {
	i := strings.LastIndexByte(episode, '.')
	ns, err := strconv.ParseInt(episode[i+1:], 10, 64)
	if i < 0 || err != nil {
		return fallback
	}
	return time.Unix(0, ns).UTC()
}

// raiseStress returns the episode's stress alert unless it was raised before, or the entry is
// before quiet.
func (st *State) raiseStress(n *NodeState, e Entry, quiet time.Time) []SendAlert {
	if _, done := st.Raised[e.Episode]; done {
		return nil
	}
	st.raise(e.Episode, e.At)
	if e.At.Before(quiet) {
		return nil
	}
	return []SendAlert{stressAlert(n, e)}
}

func (st *State) raise(key string, at time.Time) {
	if st.Raised == nil {
		st.Raised = make(map[string]time.Time)
	}
	st.Raised[key] = at
}

// checkFrequent queues an advisory when the entry at `at` makes two in a week, unless the node
// had one within a week of it or one is already waiting.
func (st *State) checkFrequent(n *NodeState, at time.Time, cfg RuleConfig, quiet time.Time) {
	trigger, ok := n.secondInWeek(at)
	if !ok || n.advisedNear(trigger) {
		return
	}
	if trigger.Before(quiet) {
		// History: count it as advised, as it most likely was, so the week is not advised twice.
		n.LastAdvisory = trigger
		return
	}
	for _, p := range st.Pending {
		if p.Cluster == n.Cluster && p.Node == n.Node {
			return
		}
	}
	st.Pending = append(st.Pending, Pending{
		Cluster: n.Cluster, Node: n.Node, Trigger: trigger, Due: trigger.Add(cfg.Settle),
	})
}

// secondInWeek finds the entry that makes two in a trailing week, with the entry at `at` one of
// the pair. Entries are placed by event time, so a late one can pair with a later neighbour.
func (n *NodeState) secondInWeek(at time.Time) (time.Time, bool) {
	for i, e := range n.Entries {
		if !e.At.Equal(at) {
			continue
		}
		if i > 0 && at.Sub(n.Entries[i-1].At) < Week {
			return at, true
		}
		if i+1 < len(n.Entries) && n.Entries[i+1].At.Sub(at) < Week {
			return n.Entries[i+1].At, true
		}
		return time.Time{}, false
	}
	return time.Time{}, false
}

// advisedNear reports whether an advisory covered the node within a week of t, either side:
// events may arrive out of order.
func (n *NodeState) advisedNear(t time.Time) bool {
	if n.LastAdvisory.IsZero() {
		return false
	}
	d := t.Sub(n.LastAdvisory)
	return d < Week && d > -Week
}

// Due releases the advisories whose settle window has ended by now, diagnosing each on the
// state as it is then. Like Apply, it may change st in place.
func Due(st State, now time.Time, cfg RuleConfig) (State, []SendAlert) {
	// Oldest first: a cluster-wide verdict covers the siblings whose advisories wait behind it.
	sort.SliceStable(st.Pending, func(i, j int) bool {
		return st.Pending[i].Due.Before(st.Pending[j].Due)
	})
	var out []SendAlert
	var rest []Pending
	for _, p := range st.Pending {
		if p.Due.After(now) {
			rest = append(rest, p)
			continue
		}
		if a, ok := st.advise(p, cfg); ok {
			out = append(out, a)
		}
	}
	st.Pending = rest
	return st, out
}

// NextDue returns when Due next has something to release.
func NextDue(st State) (time.Time, bool) {
	var next time.Time
	for _, p := range st.Pending {
		if next.IsZero() || p.Due.Before(next) {
			next = p.Due
		}
	}
	return next, !next.IsZero()
}
