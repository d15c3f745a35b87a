package events

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metric returns the value of the series name (a counter, a gauge, or a histogram's count)
// whose labels include want.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, want) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func TestPublisherMetricsShowAnOutageAndItsEnd(t *testing.T) {
	ns, js := startJetStream(t)
	p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js, RetryDelay: 20 * time.Millisecond,
		PublishTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := p.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	node := map[string]string{"node": "edge-1", "cluster": "edge"}
	transitions := map[string]string{"kind": "transition"}
	if got := metric(t, reg, "mtastress_events_publish_latency_seconds", transitions); got != 0 {
		t.Fatalf("latency observations before any event: %v", got)
	}

	ns.Server().Shutdown()
	ns.Server().WaitForShutdown()
	p.Entered(StressTransition{Episode: "edge.edge-1.1", Entered: time.Now().UTC()})
	for i := range 10 {
		p.Sample(LoadSample{Active: i})
	}
	if got := metric(t, reg, "mtastress_events_outbox_depth", node); got != 1 {
		t.Errorf("outbox depth with NATS away = %v, want 1", got)
	}
	if got := metric(t, reg, "mtastress_events_samples_coalesced_total", node); got < 9 {
		t.Errorf("samples coalesced = %v, want at least 9 of 10", got)
	}
	// A failed attempt must be counted before NATS comes back, or there is no retry to see.
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, reg, "mtastress_events_publish_failures_total", node) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt counted while NATS was away")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := ns.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"mtastress_events_published_total", node, 2},
		{"mtastress_events_publish_latency_seconds", map[string]string{"kind": "transition"}, 1},
		{"mtastress_events_publish_latency_seconds", map[string]string{"kind": "sample"}, 1},
	}
	for _, c := range checks {
		if got := metric(t, reg, c.name, c.labels); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	if got := metric(t, reg, "mtastress_events_outbox_depth", node); got != 0 {
		t.Errorf("outbox depth after NATS came back = %v, want 0", got)
	}
}
