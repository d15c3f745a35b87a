package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mtastress/mtastress/alerts"
	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/scenarios"
	"github.com/mtastress/mtastress/testenv"
)

// The embedded stack's fixed names (DESIGN.md "The embedded stack").
const (
	AdminAddress = "ops@" + LocalDomain
	alertsFrom   = "mtastress-alerts@" + LocalDomain
	// replaySettle is the alert service's settle window in the embedded stack. Production
	// waits 2 minutes for sibling nodes' entries; in a replay every node shares one process and
	// one clock, so a few seconds cover the same burst.
	replaySettle = 3 * time.Second
	// The alert service's consumer and bucket on an external NATS (StackOptions.NATSURL).
	replayDurable = "mtastress-replay"
	replayBucket  = "mtastress_replay"
)

// ErrEnvironment means the embedded stack could not start (exit code 3).
var ErrEnvironment = errors.New("environment could not start")

// Stack is the embedded environment of a replay: real NATS, MailHog, a next-hop sink, one MTA
// per scenario node and the alert service, in this process, on one shared clock.
type Stack struct {
	clock   *Clock
	NATS    *testenv.NATS        // the embedded server; nil with NATSURL or NATSCluster
	Cluster *testenv.NATSCluster // with StackOptions.NATSCluster
	MailHog *testenv.MailHog
	Sink    *testenv.Sink
	Nodes   []*StackNode
	Alerts  *alerts.Service

	log      *slog.Logger
	dir      string
	natsURL  string // what every connection of the stack dials; a list for a cluster
	replicas int    // of the streams and the alert bucket
	// alertsDurable and alertsBucket are "" (the alert service's defaults) on a NATS of the
	// stack's own. On an external one they are the replay's, so that a replay never shares a
	// production alert service's consumer (it would take half its events) or its state.
	alertsDurable, alertsBucket string
	conns                       []*nats.Conn
	httpServers                 []*http.Server
	stopAlerts                  context.CancelFunc
	alertsDone                  chan error
	closed                      bool
}

// StackNode is one MTA of the stack.
type StackNode struct {
	Name, Model string
	Limit       int
	Addr        string // SMTP listener, 127.0.0.1:port
	MetricsURL  string // Prometheus /metrics, when StackOptions.Metrics is set
	Config      mta.Config
	Server      *mta.Server
	pub         *events.Publisher
}

// StackOptions tune the stack.
type StackOptions struct {
	Logger  *slog.Logger
	Catalog *scenarios.Catalog
	// Metrics serves each node's Prometheus registry on 127.0.0.1, as `mtastress dev` shows.
	Metrics bool
	// NATSURL is an external NATS (comma-separated URLs for a cluster): the stack starts no
	// NATS of its own and sets its streams up there, keeping the replicas of streams that exist
	// (one for new ones), with an alert consumer and bucket of its own. A scenario with a skip
	// is refused (ErrNotSupported): its events would be days ahead of every other clock there.
	NATSURL string
	// NATSCluster runs the stack on testenv's three-server cluster, streams and bucket with
	// three replicas. Ignored with NATSURL.
	NATSCluster bool
}

// StartStack starts everything a scenario needs. On error it stops what it started.
func StartStack(ctx context.Context, sc *scenarios.Scenario, opts StackOptions) (st *Stack, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.NATSURL != "" {
		if err := refuseSkips(sc); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "mtastress-stack-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
	}
	st = &Stack{clock: NewClock(), log: log, dir: dir}
	defer func() {
		if err != nil {
			st.Close()
			err = fmt.Errorf("%w: %v", ErrEnvironment, err)
		}
	}()

	if err := st.startNATS(opts); err != nil {
		return st, err
	}
	if st.MailHog, err = testenv.StartMailHog(); err != nil {
		return st, err
	}
	if st.Sink, err = testenv.StartSink(testenv.SinkOptions{}); err != nil {
		return st, err
	}
	js, err := st.jetStream("setup")
	if err != nil {
		return st, err
	}
	if opts.NATSURL != "" {
		if st.replicas, err = externalReplicas(ctx, js, opts.NATSURL); err != nil {
			return st, err
		}
	}
	if err := events.EnsureStreams(ctx, js, st.replicas); err != nil {
		return st, err
	}
	if err := st.startAlerts(opts.Catalog); err != nil {
		return st, err
	}
	for _, n := range sc.Topology.Nodes {
		if err := st.startNode(sc, n); err != nil {
			return st, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if opts.Metrics {
			if err := st.serveMetrics(st.Nodes[len(st.Nodes)-1]); err != nil {
				return st, fmt.Errorf("node %s metrics: %w", n.Name, err)
			}
		}
	}
	return st, nil
}

// startNATS starts the stack's NATS, or only notes the external one.
func (st *Stack) startNATS(opts StackOptions) (err error) {
	store := filepath.Join(st.dir, "nats")
	switch {
	case opts.NATSURL != "":
		st.natsURL = opts.NATSURL
		st.alertsDurable, st.alertsBucket = replayDurable, replayBucket
	case opts.NATSCluster:
		st.Cluster, err = testenv.StartNATSCluster(testenv.NATSClusterOptions{StoreDir: store})
		if err == nil {
			st.natsURL, st.replicas = strings.Join(st.Cluster.URLs(), ","), events.ReplicasCluster
		}
	default:
		st.NATS, err = testenv.StartNATS(testenv.NATSOptions{StoreDir: store})
		if err == nil {
			st.natsURL, st.replicas = st.NATS.URL(), events.ReplicasSingle
		}
	}
	return err
}

// externalReplicas joins an operator's streams as they are: a replay must never rescale them.
func externalReplicas(ctx context.Context, js jetstream.JetStream, url string) (int, error) {
	n, err := events.CurrentReplicas(ctx, js)
	if err != nil && !js.Conn().IsConnected() {
		return 0, fmt.Errorf("no NATS server answered at %s: %v", url, err)
	}
	return n, err
}

func refuseSkips(sc *scenarios.Scenario) error {
	for _, ph := range sc.Phases {
		if ph.Skip {
			return fmt.Errorf("%w: phase %s skips time, which an external NATS cannot follow",
				ErrNotSupported, ph.Name)
		}
	}
	return nil
}

// NATSURL is the NATS the stack uses: a comma-separated list for a cluster.
func (st *Stack) NATSURL() string { return st.natsURL }

// jetStream opens a NATS connection of the stack's own, closed with the stack.
func (st *Stack) jetStream(name string) (jetstream.JetStream, error) {
	nc, err := nats.Connect(st.natsURL, nats.Name("mtastress-"+name),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	st.conns = append(st.conns, nc)
	return jetstream.New(nc)
}

func (st *Stack) startAlerts(cat *scenarios.Catalog) error {
	js, err := st.jetStream("alerts")
	if err != nil {
		return err
	}
	svc, err := alerts.New(alerts.Config{
		JS:           js,
		Admin:        []string{AdminAddress},
		From:         alertsFrom,
		Relay:        st.MailHog.SMTPAddr(),
		Catalog:      cat,
		Replicas:     st.replicas,
		Durable:      st.alertsDurable,
		Bucket:       st.alertsBucket,
		Clock:        st.clock,
		Logger:       st.log,
		SettleWindow: replaySettle,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.Alerts, st.stopAlerts, st.alertsDone = svc, cancel, make(chan error, 1)
	go func() { st.alertsDone <- svc.Run(ctx) }()
	return nil
}

func (st *Stack) startNode(sc *scenarios.Scenario, n scenarios.Node) error {
	js, err := st.jetStream(n.Name)
	if err != nil {
		return err
	}
	spool := filepath.Join(st.dir, "spool-"+n.Name)
	// The event sequence and outbox sit beside the spool, not in it: the spool is the MTA's.
	evdir := filepath.Join(st.dir, "events-"+n.Name)
	for _, d := range []string{spool, evdir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	// The MTA names its node on every line itself.
	log := st.log
	pub, err := events.NewPublisher(events.PublisherConfig{
		Node:       events.Node{Node: n.Name, Cluster: sc.Topology.Cluster, Model: n.Model, Limit: n.ProcessLimit},
		JS:         js,
		Clock:      st.clock,
		SeqFile:    filepath.Join(evdir, "sequence"),
		OutboxFile: filepath.Join(evdir, "outbox"),
		Logger:     log,
	})
	if err != nil {
		return err
	}
	cfg := nodeConfig(sc, n, spool, st.Sink.Addr())
	cfg.Clock, cfg.Events, cfg.Logger = st.clock, pub, log
	srv, err := mta.New(cfg)
	if err != nil {
		pub.Close(context.Background())
		return err
	}
	// The publisher's own series (coalesced samples, outbox depth, publish latency) sit beside
	// the node's, so `mtastress dev` shows them on one /metrics.
	if err := pub.RegisterMetrics(srv.Registry()); err != nil {
		log.Warn("event metrics not registered", "node", n.Name, "err", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		pub.Close(context.Background())
		return err
	}
	node := &StackNode{Name: n.Name, Model: n.Model, Limit: n.ProcessLimit, Addr: l.Addr().String(), Config: cfg, Server: srv, pub: pub}
	st.Nodes = append(st.Nodes, node)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, mta.ErrServerClosed) {
			log.Error("mta stopped", "err", err)
		}
	}()
	return nil
}

// serveMetrics serves one node's registry on its own loopback port.
func (st *Stack) serveMetrics(n *StackNode) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.Server.Registry(), promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	st.httpServers = append(st.httpServers, srv)
	go srv.Serve(l)
	n.MetricsURL = "http://" + l.Addr().String() + "/metrics"
	return nil
}

// nodeConfig is the MTA configuration of one scenario node in the embedded stack.
func nodeConfig(sc *scenarios.Scenario, n scenarios.Node, spool, relay string) mta.Config {
	cfg := mta.DefaultConfig()
	cfg.Node, cfg.Cluster, cfg.Model, cfg.Limit = n.Name, sc.Topology.Cluster, n.Model, n.ProcessLimit
	cfg.Hostname = n.Name + "." + LocalDomain
	cfg.Domains = []string{LocalDomain}
	cfg.Users = make([]string, ValidUsers)
	for i := range cfg.Users {
		cfg.Users[i] = fmt.Sprintf("user%d", i+1)
	}
	cfg.Relay = relay
	cfg.SpoolDir = spool
	// The sink never refuses in a plain replay; quick retries keep a hiccup from outliving the run.
	cfg.RetryMin, cfg.RetryMax = 500*time.Millisecond, 5*time.Second
	o := sc.MTA
	if o.SlotWait != nil {
		cfg.SlotWait = *o.SlotWait
	}
	if o.Cooldown != nil {
		cfg.Cooldown = *o.Cooldown
	}
	if o.StressTimeout != nil {
		cfg.StressCommandTimeout = *o.StressTimeout
	}
	if o.WaitMax != nil {
		cfg.WaitMax = *o.WaitMax
	}
	if o.ClientCap != nil {
		cfg.ClientCap = *o.ClientCap
	}
	return cfg
}

// Close stops the stack: the MTAs first (their spools are kept in the temp dir until it is
// removed), then the publishers, the alert service and the servers.
func (st *Stack) Close() {
	if st.closed {
		return
	}
	st.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range st.Nodes {
		if err := n.Server.Shutdown(ctx); err != nil && !errors.Is(err, mta.ErrServerClosed) {
			st.log.Warn("mta shutdown", "node", n.Name, "err", err)
		}
		if err := n.pub.Close(ctx); err != nil {
			st.log.Warn("publisher close", "node", n.Name, "err", err)
		}
	}
	for _, h := range st.httpServers {
		h.Close()
	}
	if st.stopAlerts != nil {
		st.stopAlerts()
		<-st.alertsDone
	}
	for _, nc := range st.conns {
		nc.Close()
	}
	if st.Sink != nil {
		st.Sink.Stop()
	}
	if st.MailHog != nil {
		st.MailHog.Stop()
	}
	if st.NATS != nil {
		st.NATS.Stop()
	}
	if st.Cluster != nil {
		st.Cluster.Stop()
	}
	os.RemoveAll(st.dir)
}
