package mta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrListen wraps a listener that could not be opened at start.
var ErrListen = errors.New("mta: listen failed")

// Daemon is a production node as `mtastress mta` runs it: the Server on its listeners, the
// Prometheus endpoint, and the event publisher on NATS when the file configures one.
type Daemon struct {
	log   *slog.Logger
	limit int
	srv   *Server

	mu      sync.Mutex
	running FileConfig // what is in effect: the start's file plus the reloads applied

	smtp, exempt []net.Listener
	proxy        []net.Listener
	metrics      *http.Server
	metricsLn    net.Listener
	events       *eventLink // nil without NATS
	errs         chan error
	serving      sync.WaitGroup
	shutOnce     sync.Once
}

// StartDaemon starts a node from its file and the process limit of its model: listeners
// first (a taken port fails before the spool is touched), then NATS, then the Server.
func StartDaemon(fc FileConfig, limit int, log *slog.Logger) (*Daemon, error) {
	cfg := fc.MTAConfig(limit)
	cfg.Logger = log
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{log: log.With("node", cfg.Node), limit: limit, running: fc, errs: make(chan error, 1)}
	if err := d.listen(fc); err != nil {
		d.closeListeners()
		return nil, err
	}
	if fc.NATS != nil {
		ev, err := startEvents(*fc.NATS, cfg, d.log)
		if err != nil {
			d.closeListeners()
			return nil, err
		}
		d.events, cfg.Events = ev, ev.pub
	}
	srv, err := New(cfg)
	if err != nil {
		d.events.close(d.log)
		d.closeListeners()
		return nil, err
	}
	d.srv = srv
	if d.events != nil {
		if err := d.events.pub.RegisterMetrics(srv.Registry()); err != nil {
			d.log.Warn("event publisher metrics not registered", "err", err)
		}
	}
	d.serve()
	return d, nil
}

func (d *Daemon) listen(fc FileConfig) error {
	open := func(addr, what string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrListen, what, addr, err)
		}
		return l, nil
	}
	for _, a := range fc.Listen {
		l, err := open(a, "listen")
		if err != nil {
			return err
		}
		d.smtp = append(d.smtp, l)
	}
	for _, a := range fc.ListenExempt {
		l, err := open(a, "listen_exempt")
		if err != nil {
			return err
		}
		d.exempt = append(d.exempt, l)
	}
	for _, a := range fc.ListenProxy {
		l, err := open(a, "listen_proxy")
		if err != nil {
			return err
		}
		d.proxy = append(d.proxy, l)
	}
	if fc.Metrics != "" {
		l, err := open(fc.Metrics, "metrics")
		if err != nil {
			return err
		}
		d.metricsLn = l
	}
	return nil
}

func (d *Daemon) closeListeners() {
	for _, l := range append(append(append(d.smtp, d.exempt...), d.proxy...), d.metricsLn) {
		if l != nil {
			l.Close()
		}
	}
}

// serve starts a goroutine per listener. One that stops on its own (not by Shutdown) is
// reported on Err.
func (d *Daemon) serve() {
	run := func(what string, l net.Listener, serve func(net.Listener) error) {
		d.log.Info("listening", "kind", what, "addr", l.Addr().String())
		d.serving.Add(1)
		go func() {
			defer d.serving.Done()
			if err := serve(l); err != nil && !errors.Is(err, ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
				select {
				case d.errs <- fmt.Errorf("mta: %s listener %s stopped: %w", what, l.Addr(), err):
				default:
				}
			}
		}()
	}
	for _, l := range d.smtp {
		run("smtp", l, d.srv.Serve)
	}
	for _, l := range d.exempt {
		run("smtp-exempt", l, d.srv.ServeExempt)
	}
	for _, l := range d.proxy {
		run("smtp-proxy", l, d.srv.ServeProxy)
	}
	if d.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.srv.Registry(), promhttp.HandlerOpts{}))
		d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
		run("metrics", d.metricsLn, d.metrics.Serve)
	}
}

// Err reports a listener that stopped on its own: the node should shut down and say why.
func (d *Daemon) Err() <-chan error { return d.errs }

// Server is the node's Server.
func (d *Daemon) Server() *Server { return d.srv }

// Reload applies what can change without a restart from next, a freshly loaded file: the
// recipient policy, routing and rate limits (domains, users, users_file, relay_networks,
// relay, transports, rate_limits) and the STARTTLS certificate, read again. The keys that changed but need a restart are named in the log and returned.
func (d *Daemon) Reload(next FileConfig) (restart []string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	reloaded, restart := d.running.Changes(next)
	// With STARTTLS every SIGHUP reads the certificate again: a renewal keeps the file names.
	if len(reloaded) > 0 || next.MTA.TLSCertFile != "" {
		cfg := next.MTAConfig(d.limit)
		cfg.Logger = d.log
		if err := d.srv.Reload(cfg); err != nil {
			return nil, err
		}
		d.running = d.running.WithReloaded(next)
	}
	d.log.Info("config reloaded", "file", next.Path, "applied", reloaded)
	if len(restart) > 0 {
		d.log.Warn("config changes that need a restart were not applied", "keys", restart)
	}
	return restart, nil
}

// Shutdown stops the node: the Server first (no new sessions; transactions finish until ctx,
// then 421; the spool is kept), then the metrics endpoint, then the events, whose publisher
// still needs the NATS connection to send what is queued. A second call does nothing.
func (d *Daemon) Shutdown(ctx context.Context) error {
	err := ErrServerClosed
	d.shutOnce.Do(func() {
		err = d.srv.Shutdown(ctx)
		if d.metrics != nil {
			mctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = d.metrics.Shutdown(mctx)
			cancel()
		}
		d.events.close(d.log)
		d.serving.Wait()
		d.log.Info("mta stopped", "queued", d.srv.Snapshot().QueueDepth)
	})
	return err
}
