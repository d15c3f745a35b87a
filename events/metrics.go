package events

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// publisherMetrics are one publisher's Prometheus series. Counters and the outbox depth are
// read from Stats at scrape time; only the latency needs a series of its own.
type publisherMetrics struct {
	latency *prometheus.HistogramVec // by kind: sample, transition
	all     []prometheus.Collector
}

func newPublisherMetrics(p *Publisher) *publisherMetrics {
	labels := prometheus.Labels{"node": p.cfg.Node.Node, "cluster": p.cfg.Node.Cluster}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "mtastress", Subsystem: "events", Name: name, Help: help,
			ConstLabels: labels}
	}
	stat := func(f func(PublisherStats) float64) func() float64 {
		return func() float64 { return f(p.Stats()) }
	}
	m := &publisherMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mtastress", Subsystem: "events", Name: "publish_latency_seconds",
			ConstLabels: labels,
			Help: "Time from an event being queued to JetStream acknowledging it, retries and " +
				"waiting for NATS included, by kind (sample, transition).",
			// 1 ms up to about 70 minutes: an outage shows up as the tail.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"kind"}),
	}
	// Both kinds exist from the start, so a dashboard shows zero rather than nothing.
	m.latency.WithLabelValues("sample")
	m.latency.WithLabelValues("transition")
	m.all = []prometheus.Collector{
		m.latency,
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("published_total",
			"Events acknowledged by JetStream.")),
			stat(func(s PublisherStats) float64 { return float64(s.Published) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("samples_coalesced_total",
			"Load samples replaced by a newer one before they could be sent (NATS slow or away).")),
			stat(func(s PublisherStats) float64 { return float64(s.Coalesced) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("publish_failures_total",
			"Publish attempts that failed and will be retried.")),
			stat(func(s PublisherStats) float64 { return float64(s.Failures) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("outbox_depth",
			"Stress transitions queued and not yet acknowledged; above 0 for long means NATS is away.")),
			stat(func(s PublisherStats) float64 { return float64(s.Pending) })),
	}
	return m
}

// observe records one acknowledged event. The caller may hold the publisher's mu: a histogram
// takes no lock of ours.
func (m *publisherMetrics) observe(isSample bool, d time.Duration) {
	kind := "transition"
	if isSample {
		kind = "sample"
	}
	m.latency.WithLabelValues(kind).Observe(d.Seconds())
}

// Collectors returns the publisher's Prometheus collectors, labelled with its node and cluster:
// mtastress_events_published_total, _samples_coalesced_total, _publish_failures_total,
// _outbox_depth and _publish_latency_seconds. The MTA registers them beside its own, on its
// own registry, so several nodes can share a process.
func (p *Publisher) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector(nil), p.metrics.all...)
}

// RegisterMetrics registers Collectors on reg.
func (p *Publisher) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range p.metrics.all {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
