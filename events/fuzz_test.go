package events

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode holds Decode to what a consumer relies on, whatever arrives on the stream: it never
// panics; a failure is ErrMalformed or ErrUnknownType, so the consumer can terminate the
// message and go on; and an event it accepts is whole (its data matches its type and its
// source) and survives being encoded and decoded again unchanged.
// Seeds: testdata/fuzz/FuzzDecode plus one encoded event of each type.
func FuzzDecode(f *testing.F) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	exited := at.Add(time.Minute)
	n := Node{Node: "edge-1", Cluster: "edge", Model: "T10", Limit: 10}
	for _, e := range []struct {
		typ  string
		data any
	}{
		{TypeLoadSample, &LoadSample{Node: n, Active: 10, Waiting: 2, Stress: true, StressPercent: 50,
			Episode: "edge.edge-1.1", PeakDemand: 12, SessionsServed: 3}},
		{TypeStressEntered, &StressTransition{Node: n, Episode: "edge.edge-1.1", Entered: at, PeakDemand: 10}},
		{TypeStressExited, &StressTransition{Node: n, Episode: "edge.edge-1.1", Entered: at, Exited: &exited}},
	} {
		env, err := Encode(e.typ, 7, at, n, e.data)
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("Decode error %v is neither ErrMalformed nor ErrUnknownType", err)
			}
			return
		}
		node, data := acceptedEvent(t, ev)

		// What the consumer applies must not change when a producer sends it again.
		env, err := Encode(ev.Type, ev.Seq, ev.Time, node, data)
		if err != nil {
			// Only a time JSON cannot carry (a year past 9999) may fail here, and Decode
			// parsed the envelope's time from JSON, so that cannot happen either.
			t.Fatalf("re-encoding an accepted event: %v", err)
		}
		b2, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("marshalling a re-encoded event: %v", err)
		}
		again, err := Decode(b2)
		if err != nil {
			t.Fatalf("a re-encoded accepted event is refused: %v\nfirst:  %s\nsecond: %s", err, b, b2)
		}
		if again.Seq != ev.Seq || again.Source != ev.Source || again.Type != ev.Type || !again.Time.Equal(ev.Time) {
			t.Fatalf("envelope changed in the round trip: %+v, then %+v", ev.Envelope, again.Envelope)
		}
		_, data2 := acceptedEvent(t, again)
		if diff := cmp.Diff(data, data2); diff != "" {
			t.Fatalf("data changed in the round trip (-first +second):\n%s", diff)
		}
	})
}

// acceptedEvent checks the invariants of an event Decode accepted and returns its node and data.
func acceptedEvent(t *testing.T, ev *Event) (Node, any) {
	t.Helper()
	var node Node
	var data any
	switch {
	case ev.Type == TypeLoadSample && ev.Sample != nil && ev.Transition == nil:
		node, data = ev.Sample.Node, ev.Sample
	case (ev.Type == TypeStressEntered || ev.Type == TypeStressExited) &&
		ev.Transition != nil && ev.Sample == nil:
		node, data = ev.Transition.Node, ev.Transition
		if ev.Transition.Episode == "" {
			t.Fatalf("a transition without an episode was accepted: %+v", ev.Transition)
		}
		if ev.Type == TypeStressExited && ev.Transition.Exited == nil {
			t.Fatalf("an exit without an exit time was accepted: %+v", ev.Transition)
		}
	default:
		t.Fatalf("type %q decoded with sample %v and transition %v",
			ev.Type, ev.Sample != nil, ev.Transition != nil)
	}
	if ValidName(node.Cluster) != nil || ValidName(node.Node) != nil || node.Limit <= 0 {
		t.Fatalf("accepted an event naming an invalid node %+v", node)
	}
	if ev.Source != Source(node.Cluster, node.Node) {
		t.Fatalf("accepted source %q for node %s/%s", ev.Source, node.Cluster, node.Node)
	}
	if ev.Time.IsZero() || ev.ID == "" || ev.SpecVersion != SpecVersion {
		t.Fatalf("accepted an incomplete envelope %+v", ev.Envelope)
	}
	return node, data
}
