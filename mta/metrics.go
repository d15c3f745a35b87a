package mta

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one Server's Prometheus series, on a registry of its own so that several Servers
// (the simulator's nodes) can live in one process. Gauges that mirror state are read from it at
// scrape time instead of being kept in step by hand.
type metrics struct {
	reg *prometheus.Registry

	sessions        *prometheus.CounterVec // by outcome
	accepted        prometheus.Counter
	rejected        *prometheus.CounterVec // by reply code
	deliveries      *prometheus.CounterVec // by outcome and reply code
	slotWait        prometheus.Histogram
	deliveryLatency prometheus.Histogram
	spoolReadErrors prometheus.Counter
	rateLimited     *prometheus.CounterVec // by kind
}

// Outcomes of a session, for the sessions counter.
const (
	outcomeServed     = "served"     // got a slot
	outcomeTempfailed = "tempfailed" // answered 421 before a slot: busy, cap, shutdown
	outcomeRejected   = "rejected"   // closed for too many errors or junk commands
	outcomeAbandoned  = "abandoned"  // hung up while waiting for a slot
)

func newMetrics(cfg Config, s *Server) *metrics {
	labels := prometheus.Labels{"node": cfg.Node, "cluster": cfg.Cluster}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "mtastress", Subsystem: "mta", Name: name, Help: help, ConstLabels: labels}
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts(opts("sessions_total",
			"SMTP connections by outcome: served (got a slot), tempfailed (421 before a slot), rejected (closed for errors), abandoned (hung up while waiting).")),
			[]string{"outcome"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts(opts("messages_accepted_total",
			"Messages answered 250 after DATA, each on disk first."))),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts(opts("rejections_total",
			"Recipients and messages refused, by reply code.")), []string{"code"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("deliveries_total",
			"Recipient delivery outcomes (delivered, deferred, bounced), by the next hop's reply code.")),
			[]string{"outcome", "code"}),
		spoolReadErrors: prometheus.NewCounter(prometheus.CounterOpts(opts("spool_read_errors_total",
			"Spooled messages that could not be read back for delivery or a bounce; any is worth a look at the disk."))),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts(opts("rate_limited_total",
			"Connections, messages and recipients refused by the per-client rate limits, by kind.")), []string{"kind"}),
		slotWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "mtastress", Subsystem: "mta", Name: "slot_wait_seconds", ConstLabels: labels,
			Help:    "How long connections waited for a session slot, granted or not.",
			Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60},
		}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "mtastress", Subsystem: "mta", Name: "delivery_latency_seconds", ConstLabels: labels,
			Help:    "Time from acceptance to delivery at the next hop, per recipient.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 12),
		}),
	}
	gauge := func(name, help string, f func(Snapshot) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts(name, help)), func() float64 { return f(s.Snapshot()) })
	}
	m.reg.MustRegister(m.sessions, m.accepted, m.rejected, m.deliveries, m.slotWait, m.deliveryLatency,
		m.spoolReadErrors, m.rateLimited,
		gauge("sessions_active", "Sessions holding a slot.", func(s Snapshot) float64 { return float64(s.Active) }),
		gauge("sessions_waiting", "Connections waiting for a slot.", func(s Snapshot) float64 { return float64(s.Waiting) }),
		gauge("stress", "1 while the node is in stress.", func(s Snapshot) float64 { return b2f(s.InStress) }),
		gauge("stress_percent", "Share of active sessions running with stress settings, in percent.",
			func(s Snapshot) float64 { return s.StressPercent }),
		gauge("queue_depth", "Messages in the spool not yet fully delivered or bounced.",
			func(s Snapshot) float64 { return float64(s.QueueDepth) }),
	)
	for k := range rateKinds {
		m.rateLimited.WithLabelValues(rateKindNames[k])
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mtastress", Subsystem: "mta", Name: "client_rate_peak", Help: "The most " +
				"connections, messages or recipients one client address attempted in one minute, since start.",
			ConstLabels: prometheus.Labels{"node": cfg.Node, "cluster": cfg.Cluster, "kind": rateKindNames[k]},
		}, func() float64 { return float64(s.rates.peak(k)) }))
	}
	limit := prometheus.NewGauge(prometheus.GaugeOpts(opts("process_limit", "The model's process limit: slots.")))
	limit.Set(float64(cfg.Limit))
	m.reg.MustRegister(limit)
	return m
}

func (m *metrics) rejectedCode(code int) { m.rejected.WithLabelValues(strconv.Itoa(code)).Inc() }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
