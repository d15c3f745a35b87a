package alerts

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// fleet builds real events (encoded and decoded as a consumer sees them) with one sequence
// counter per node, as the publisher keeps.
type fleet struct {
	t   testing.TB
	seq map[string]uint64
}

func newFleet(t testing.TB) *fleet { return &fleet{t: t, seq: make(map[string]uint64)} }

func (f *fleet) node(cluster, node string) events.Node {
	return events.Node{Cluster: cluster, Node: node, Model: "T10", Limit: 10}
}

func (f *fleet) event(typ string, at time.Time, n events.Node, data any) *events.Event {
	f.t.Helper()
	f.seq[n.Cluster+"/"+n.Node]++
	return f.encode(typ, f.seq[n.Cluster+"/"+n.Node], at, n, data)
}

func (f *fleet) encode(typ string, seq uint64, at time.Time, n events.Node, data any) *events.Event {
	f.t.Helper()
	env, err := events.Encode(typ, seq, at, n, data)
	if err != nil {
		f.t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		f.t.Fatal(err)
	}
	ev, err := events.Decode(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

func (f *fleet) entered(cluster, node string, at time.Time, peak int) *events.Event {
	n := f.node(cluster, node)
	return f.event(events.TypeStressEntered, at, n, &events.StressTransition{
		Node: n, Episode: events.EpisodeID(cluster, node, at), Entered: at, PeakDemand: peak,
	})
}

func (f *fleet) exited(cluster, node string, entered, at time.Time) *events.Event {
	n := f.node(cluster, node)
	return f.event(events.TypeStressExited, at, n, &events.StressTransition{
		Node: n, Episode: events.EpisodeID(cluster, node, entered), Entered: entered, Exited: &at,
		PeakDemand: 14,
	})
}

// sample of a node; entered non-zero means it is in stress in that episode.
func (f *fleet) sample(cluster, node string, at time.Time, served uint64, entered time.Time) *events.Event {
	n := f.node(cluster, node)
	s := &events.LoadSample{Node: n, Active: 3, SessionsServed: served}
	if !entered.IsZero() {
		s.Stress, s.Active, s.Waiting, s.PeakDemand = true, 10, 4, 14
		s.Episode = events.EpisodeID(cluster, node, entered)
	}
	return f.event(events.TypeLoadSample, at, n, s)
}

// step is one thing that happens on a timeline: an event, or the runtime's timer calling Due.
type step struct {
	ev  *events.Event
	due time.Time
	// want is the outcome expected of ev.
	want Outcome
	// now is the consumer's clock; zero means the event's time.
	now time.Time
}

func at(t time.Time) step { return step{due: t} }

// run plays a timeline through Apply and Due, with now equal to the event time.
func run(t *testing.T, cfg RuleConfig, steps []step) ([]SendAlert, State) {
	t.Helper()
	var st State
	var out []SendAlert
	for i, s := range steps {
		if s.ev == nil {
			var as []SendAlert
			st, as = Due(st, s.due, cfg)
			out = append(out, as...)
			continue
		}
		var as []SendAlert
		var got Outcome
		now := s.now
		if now.IsZero() {
			now = s.ev.Time
		}
		st, as, got = Apply(st, s.ev, now, cfg)
		if got != s.want {
			t.Errorf("step %d (%s at %s): outcome %v, want %v", i, s.ev.Type, s.ev.Time, got, s.want)
		}
		out = append(out, as...)
	}
	return out, st
}

// brief is what the tables compare of an alert.
type brief struct {
	Kind, Node, Cluster, Diagnosis, Key string
}

func briefs(as []SendAlert) []brief {
	var out []brief
	for _, a := range as {
		out = append(out, brief{a.Kind, a.Node, a.Cluster, a.Diagnosis, a.Key})
	}
	return out
}

func ep(cluster, node string, at time.Time) string { return events.EpisodeID(cluster, node, at) }

func fk(cluster, node string, trigger time.Time) string { return frequentKey(cluster, node, trigger) }

func ev(e *events.Event) step { return step{ev: e, want: Applied} }

func TestApplyTimelines(t *testing.T) {
	day := 24 * time.Hour
	cfg := RuleConfig{Settle: 2 * time.Minute, Catalog: scenarios.DefaultCatalog()}
	e1, e2, e3 := t0, t0.Add(3*day), t0.Add(4*day)

	tests := []struct {
		name  string
		cfg   *RuleConfig
		steps func(f *fleet) []step
		want  []brief
	}{
		{
			name:  "an entry raises one stress alert",
			steps: func(f *fleet) []step { return []step{ev(f.entered("edge", "a", e1, 10))} },
			want:  []brief{{KindStress, "a", "edge", "", ep("edge", "a", e1)}},
		},
		{
			name: "an exit raises nothing",
			steps: func(f *fleet) []step {
				return []step{ev(f.entered("edge", "a", e1, 10)), ev(f.exited("edge", "a", e1, e1.Add(time.Minute)))}
			},
			want: []brief{{KindStress, "a", "edge", "", ep("edge", "a", e1)}},
		},
		{
			name: "a redelivered entry is a duplicate and raises nothing",
			steps: func(f *fleet) []step {
				first := f.entered("edge", "a", e1, 10)
				return []step{ev(first), {ev: first, want: Duplicate}}
			},
			want: []brief{{KindStress, "a", "edge", "", ep("edge", "a", e1)}},
		},
		{
			name: "an entry more than 5 minutes in the future is set aside",
			steps: func(f *fleet) []step {
				e := f.entered("edge", "a", e1, 10)
				return []step{{ev: e, want: Future, now: e1.Add(-6 * time.Minute)}, at(e1)}
			},
			want: nil,
		},
		{
			name: "samples in stress raise the alert of a lost entry, once",
			steps: func(f *fleet) []step {
				return []step{
					ev(f.sample("edge", "a", e1.Add(-time.Second), 100, time.Time{})),
					ev(f.sample("edge", "a", e1.Add(time.Second), 110, e1)),
					ev(f.sample("edge", "a", e1.Add(2*time.Second), 120, e1)),
				}
			},
			want: []brief{{KindStress, "a", "edge", "", ep("edge", "a", e1)}},
		},
		{
			name: "a sample first and the entry later raise one alert",
			steps: func(f *fleet) []step {
				enter := f.entered("edge", "a", e1, 10) // sequence 1, consumed late
				return []step{ev(f.sample("edge", "a", e1.Add(time.Second), 110, e1)), ev(enter)}
			},
			want: []brief{{KindStress, "a", "edge", "", ep("edge", "a", e1)}},
		},
		{
			name: "two entries in a week raise a standalone advisory after the settle window",
			steps: func(f *fleet) []step {
				return []step{
					ev(f.entered("edge", "a", e1, 12)),
					ev(f.entered("edge", "a", e2, 30)),
					at(e2.Add(time.Minute)), // still settling
					at(e2.Add(2 * time.Minute)),
				}
			},
			want: []brief{
				{KindStress, "a", "edge", "", ep("edge", "a", e1)},
				{KindStress, "a", "edge", "", ep("edge", "a", e2)},
				{KindFrequent, "a", "edge", DiagStandalone, fk("edge", "a", e2)},
			},
		},
		{
			name: "a third entry in the same week raises no second advisory",
			steps: func(f *fleet) []step {
				return []step{
					ev(f.entered("edge", "a", e1, 12)),
					ev(f.entered("edge", "a", e2, 12)),
					at(e2.Add(time.Hour)),
					ev(f.entered("edge", "a", e3, 12)),
					at(e3.Add(time.Hour)),
				}
			},
			want: []brief{
				{KindStress, "a", "edge", "", ep("edge", "a", e1)},
				{KindStress, "a", "edge", "", ep("edge", "a", e2)},
				{KindFrequent, "a", "edge", DiagStandalone, fk("edge", "a", e2)},
				{KindStress, "a", "edge", "", ep("edge", "a", e3)},
			},
		},
		{
			name: "entries eight days apart raise no advisory",
			steps: func(f *fleet) []step {
				return []step{
					ev(f.entered("edge", "a", e1, 12)),
					ev(f.entered("edge", "a", e1.Add(8*day), 12)),
					at(e1.Add(9 * day)),
				}
			},
			want: []brief{
				{KindStress, "a", "edge", "", ep("edge", "a", e1)},
				{KindStress, "a", "edge", "", ep("edge", "a", e1.Add(8*day))},
			},
		},
		{
			name: "entries arriving out of order are placed by event time",
			steps: func(f *fleet) []step {
				early := f.entered("edge", "a", e1, 12) // sequence 1
				late := f.entered("edge", "a", e2, 12)  // sequence 2, consumed first
				return []step{ev(late), ev(early), at(e2.Add(time.Hour))}
			},
			want: []brief{
				{KindStress, "a", "edge", "", ep("edge", "a", e2)},
				{KindStress, "a", "edge", "", ep("edge", "a", e1)},
				{KindFrequent, "a", "edge", DiagStandalone, fk("edge", "a", e2)},
			},
		},
		{
			name: "an entry older than the week before the newest event is stale",
			steps: func(f *fleet) []step {
				old := f.entered("edge", "a", e1, 12)
				return []step{ev(f.entered("edge", "a", e1.Add(8*day), 12)), {ev: old, want: Stale}}
			},
			want: []brief{{KindStress, "a", "edge", "", ep("edge", "a", e1.Add(8*day))}},
		},
		{
			name: "an entry older than the alert age is counted but not mailed",
			cfg:  &RuleConfig{Settle: time.Minute, MaxAlertAge: 24 * time.Hour},
			steps: func(f *fleet) []step {
				return []step{
					{ev: f.entered("edge", "a", e1, 12), want: Applied, now: e1.Add(2 * day)},
					ev(f.entered("edge", "a", e2, 12)),
					at(e2.Add(time.Hour)),
				}
			},
			want: []brief{
				{KindStress, "a", "edge", "", ep("edge", "a", e2)},
				{KindFrequent, "a", "edge", DiagStandalone, fk("edge", "a", e2)},
			},
		},
		{
			name: "one node of several stressed twice is a load-balancing advisory",
			steps: func(f *fleet) []step {
				return append(roster(f, "lb", e1, "a", "b", "c"),
					ev(f.entered("lb", "a", e1, 12)),
					ev(f.entered("lb", "a", e2, 12)),
					at(e2.Add(time.Hour)))
			},
			want: []brief{
				{KindStress, "a", "lb", "", ep("lb", "a", e1)},
				{KindStress, "a", "lb", "", ep("lb", "a", e2)},
				{KindFrequent, "a", "lb", DiagLoadBalancing, fk("lb", "a", e2)},
			},
		},
		{
			name: "every node stressed is one capacity advisory for the cluster",
			steps: func(f *fleet) []step {
				return append(roster(f, "cap", e1, "a", "b"),
					ev(f.entered("cap", "a", e1, 12)),
					ev(f.entered("cap", "b", e1.Add(time.Second), 12)),
					ev(f.entered("cap", "a", e2, 12)),
					// b's second entry lands in the settle window: covered by the same email.
					ev(f.entered("cap", "b", e2.Add(30*time.Second), 12)),
					at(e2.Add(time.Hour)),
					ev(f.entered("cap", "b", e3, 12)),
					at(e3.Add(time.Hour)))
			},
			want: []brief{
				{KindStress, "a", "cap", "", ep("cap", "a", e1)},
				{KindStress, "b", "cap", "", ep("cap", "b", e1.Add(time.Second))},
				{KindStress, "a", "cap", "", ep("cap", "a", e2)},
				{KindStress, "b", "cap", "", ep("cap", "b", e2.Add(30*time.Second))},
				{KindFrequent, "", "cap", DiagCapacity, fk("cap", "", e2)},
				{KindStress, "b", "cap", "", ep("cap", "b", e3)},
			},
		},
		{
			name: "some nodes stressed is one partial advisory for the cluster",
			steps: func(f *fleet) []step {
				return append(roster(f, "part", e1, "a", "b", "c"),
					ev(f.entered("part", "a", e1, 12)),
					ev(f.entered("part", "b", e2, 12)),
					ev(f.entered("part", "a", e3, 12)),
					at(e3.Add(time.Hour)))
			},
			want: []brief{
				{KindStress, "a", "part", "", ep("part", "a", e1)},
				{KindStress, "b", "part", "", ep("part", "b", e2)},
				{KindStress, "a", "part", "", ep("part", "a", e3)},
				{KindFrequent, "", "part", DiagPartial, fk("part", "", e3)},
			},
		},
		{
			name: "a configured roster counts nodes not heard from",
			cfg:  &RuleConfig{Settle: time.Minute, Rosters: map[string][]string{"edge": {"a", "b"}}},
			steps: func(f *fleet) []step {
				return []step{
					ev(f.entered("edge", "a", e1, 12)),
					ev(f.entered("edge", "a", e2, 12)),
					at(e2.Add(time.Hour)),
				}
			},
			want: []brief{
				{KindStress, "a", "edge", "", ep("edge", "a", e1)},
				{KindStress, "a", "edge", "", ep("edge", "a", e2)},
				{KindFrequent, "a", "edge", DiagLoadBalancing, fk("edge", "a", e2)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				c = *tc.cfg
			}
			got, _ := run(t, c, tc.steps(newFleet(t)))
			if diff := cmp.Diff(tc.want, briefs(got)); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
}

// roster makes the named nodes heard from, with sessions served, just before start.
func roster(f *fleet, cluster string, start time.Time, nodes ...string) []step {
	var out []step
	for i, n := range nodes {
		out = append(out,
			ev(f.sample(cluster, n, start.Add(-2*time.Hour), 0, time.Time{})),
			ev(f.sample(cluster, n, start.Add(-time.Hour), uint64(100*(i+1)), time.Time{})))
	}
	return out
}

func TestAdvisoryEvidence(t *testing.T) {
	f := newFleet(t)
	day := 24 * time.Hour
	steps := append(roster(f, "lb", t0, "a", "b", "c"),
		ev(f.entered("lb", "a", t0, 17)),
		ev(f.entered("lb", "a", t0.Add(day), 23)),
		at(t0.Add(2*day)))
	got, _ := run(t, RuleConfig{Catalog: scenarios.DefaultCatalog()}, steps)
	if len(got) != 3 {
		t.Fatalf("got %d alerts, want 3: %v", len(got), briefs(got))
	}
	adv := got[2]
	text := strings.Join(strings.Fields(adv.Text), " ") // as read, not as wrapped
	for _, want := range []string{
		"2026-12-07T09:00:00Z", "2026-12-08T09:00:00Z", // entry times
		"peak demand 23 sessions",
		"16.7% of the cluster's sessions (100)", "33.3%", "50.0%", // shares
		"to T25 (limit 25)", // the next model covering the peak
	} {
		if !strings.Contains(text, want) {
			t.Errorf("advisory text lacks %q:\n%s", want, adv.Text)
		}
	}
	if !strings.HasPrefix(adv.Subject, "Frequent MTA Stress: ") {
		t.Errorf("subject %q", adv.Subject)
	}
}

func TestStateStaysBounded(t *testing.T) {
	f := newFleet(t)
	var st State
	cfg := RuleConfig{Settle: time.Minute}
	for d := 0; d < 30; d++ {
		at := t0.Add(time.Duration(d) * 24 * time.Hour)
		st, _, _ = Apply(st, f.entered("edge", "a", at, 12), at, cfg)
		st, _, _ = Apply(st, f.sample("edge", "a", at.Add(time.Second), uint64(d*10), at), at, cfg)
		st, _ = Due(st, at.Add(time.Hour), cfg)
	}
	n := st.Nodes["edge/a"]
	if len(n.Entries) > 9 || len(n.Served) > 10 || len(st.Raised) > 20 {
		t.Errorf("state grows: %d entries, %d days served, %d raised", len(n.Entries), len(n.Served), len(st.Raised))
	}
}
