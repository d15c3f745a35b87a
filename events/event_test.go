package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testNode = Node{Node: "edge-1", Cluster: "edge", Model: "T10", Limit: 10}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	exited := at.Add(time.Minute)
	cases := []struct {
		name string
		typ  string
		data any
	}{
		{"a load sample", TypeLoadSample, &LoadSample{Node: testNode, Active: 10, Waiting: 3, Stress: true,
			StressPercent: 40, Episode: "edge.edge-1.1", SessionsServed: 7}},
		{"a stress entry", TypeStressEntered, &StressTransition{Node: testNode, Episode: "edge.edge-1.1", Entered: at}},
		{"a stress exit", TypeStressExited, &StressTransition{Node: testNode, Episode: "edge.edge-1.1", Entered: at,
			Exited: &exited, PeakDemand: 14}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := Encode(c.typ, 42, at, testNode, c.data)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(env)
			ev, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.Seq != 42 || ev.Sequence != "00000000000000000042" || ev.Source != "/mta/edge/edge-1" {
				t.Fatalf("envelope: seq %d %q source %q", ev.Seq, ev.Sequence, ev.Source)
			}
			var got any = ev.Sample
			if ev.Transition != nil {
				got = ev.Transition
			}
			if diff := cmp.Diff(c.data, got); diff != "" {
				t.Fatalf("data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRefusesBadEvents(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{
			"specversion": "1.0", "id": "x", "source": "/mta/edge/edge-1", "type": TypeStressEntered,
			"time": "2026-12-03T10:00:00Z", "sequence": "00000000000000000001",
			"data": map[string]any{"node": "edge-1", "cluster": "edge", "model": "T10", "limit": 10,
				"episode": "edge.edge-1.1", "entered": "2026-12-03T10:00:00Z"},
		}
	}
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		want   error
	}{
		{"another spec version", func(m map[string]any) { m["specversion"] = "0.3" }, ErrMalformed},
		{"an unknown type", func(m map[string]any) { m["type"] = "io.mtastress.load.sample.v9" }, ErrUnknownType},
		{"no time", func(m map[string]any) { delete(m, "time") }, ErrMalformed},
		{"a sequence that is not a number", func(m map[string]any) { m["sequence"] = "x1" }, ErrMalformed},
		{"a source that does not match the node", func(m map[string]any) { m["source"] = "/mta/edge/edge-2" }, ErrMalformed},
		{"an entry without an episode", func(m map[string]any) { delete(m["data"].(map[string]any), "episode") }, ErrMalformed},
		{"no data", func(m map[string]any) { delete(m, "data") }, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := good()
			c.mutate(m)
			b, _ := json.Marshal(m)
			if _, err := Decode(b); !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := Decode([]byte("{not json")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
	b, _ := json.Marshal(good())
	if _, err := Decode(b); err != nil {
		t.Fatalf("the good event itself: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"edge", "edge-1", "EU_west_2"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", "a b", "a>", strings.Repeat("é", 2)} {
		if err := ValidName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFormatSeqSortsAsString(t *testing.T) {
	if !(FormatSeq(9) < FormatSeq(10) && FormatSeq(99) < FormatSeq(1000)) {
		t.Fatal("sequences do not sort as strings")
	}
}
