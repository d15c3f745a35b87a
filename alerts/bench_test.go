package alerts

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
)

// fleetEvents builds a minute of a fleet's life: every node samples each second, and one node
// in twenty enters stress and leaves it.
func fleetEvents(b testing.TB, clusters, perCluster int) []*events.Event {
	f := newFleet(b)
	var out []*events.Event
	for s := range 60 {
		at := t0.Add(time.Duration(s) * time.Second)
		for c := range clusters {
			for n := range perCluster {
				cl, node := fmt.Sprintf("c%d", c), fmt.Sprintf("n%d", n)
				stressed := (c*perCluster+n)%20 == 0
				switch {
				case stressed && s == 10:
					out = append(out, f.entered(cl, node, at, 12))
				case stressed && s == 40:
					out = append(out, f.exited(cl, node, t0.Add(10*time.Second), at))
				}
				var ep time.Time
				if stressed && s >= 10 && s < 40 {
					ep = t0.Add(10 * time.Second)
				}
				out = append(out, f.sample(cl, node, at, uint64(s*5), ep))
			}
		}
	}
	return out
}

// BenchmarkApply is the planner's use: one State in memory for a fleet of 1000 nodes.
func BenchmarkApply(b *testing.B) {
	evs := fleetEvents(b, 50, 20)
	cfg := RuleConfig{Settle: DefaultSettle, Catalog: scenarios.DefaultCatalog()}
	b.ResetTimer()
	applied := 0
	for b.Loop() {
		var st State
		for _, ev := range evs {
			st, _, _ = Apply(st, ev, ev.Time, cfg)
		}
		st, _ = Due(st, evs[len(evs)-1].Time.Add(time.Hour), cfg)
		applied += len(evs)
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkApplyRecord is the service's CPU per event: decode the cluster's record (20 nodes),
// apply, encode it again. The two KV round trips per event come on top.
func BenchmarkApplyRecord(b *testing.B) {
	evs := fleetEvents(b, 5, 20)
	cfg := RuleConfig{Settle: DefaultSettle, Catalog: scenarios.DefaultCatalog()}
	b.ResetTimer()
	applied := 0
	for b.Loop() {
		stored := make(map[string][]byte)
		for _, ev := range evs {
			c := clusterOf(ev)
			r := &record{}
			if raw := stored[c]; raw != nil {
				if err := json.Unmarshal(raw, r); err != nil {
					b.Fatal(err)
				}
			}
			// The outbox drains within milliseconds in service, so it is left out.
			r.State, _, _ = Apply(r.State, ev, ev.Time, cfg)
			raw, err := json.Marshal(r)
			if err != nil {
				b.Fatal(err)
			}
			stored[c] = raw
		}
		applied += len(evs)
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
}
