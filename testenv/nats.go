package testenv

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsReadyTimeout bounds how long StartNATS and Restart wait for the server
// to accept clients. JetStream recovery of a large store is the slow part.
const natsReadyTimeout = 10 * time.Second

// NATSOptions configures StartNATS. The zero value is a JetStream server on a
// random port with a fresh store that Stop removes.
// A three-server cluster is StartNATSCluster's.
type NATSOptions struct {
	// StoreDir is the JetStream store. "" means a fresh directory from
	// os.MkdirTemp, removed by Stop. The default store of nats-server is
	// shared between processes, so it is never used.
	StoreDir string
	// Port is the client port on 127.0.0.1; 0 means a random free port.
	Port int
}

// NATS is an embedded nats-server with JetStream, listening on 127.0.0.1.
type NATS struct {
	mu       sync.Mutex
	srv      *server.Server // caller holds mu to read or replace it
	port     int            // the port actually bound, kept for Restart
	storeDir string
	ownStore bool // Stop removes storeDir
	stopped  bool
}

// StartNATS starts an embedded JetStream server and returns once it accepts
// clients.
func StartNATS(opts NATSOptions) (*NATS, error) {
	n := &NATS{storeDir: opts.StoreDir, port: opts.Port}
	if n.port == 0 {
		n.port = -1 // nats-server's "pick a random port"
	}
	if n.storeDir == "" {
		dir, err := os.MkdirTemp("", "testenv-nats-")
		if err != nil {
			return nil, fmt.Errorf("testenv: nats store: %w", err)
		}
		n.storeDir, n.ownStore = dir, true
	}
	if err := n.start(); err != nil {
		n.removeStore()
		return nil, err
	}
	return n, nil
}

// start runs a new server on n.port and records the port it bound.
// The caller holds mu, or n is not shared yet.
func (n *NATS) start() error {
	srv, err := runServer(n.serverOptions())
	if err != nil {
		return err
	}
	n.srv = srv
	n.port = srv.Addr().(*net.TCPAddr).Port
	return nil
}

// runServer starts one server with JetStream and returns once it accepts
// clients, or shuts it down again and says why it did not.
func runServer(opts *server.Options) (*server.Server, error) {
	logs := &natsErrorLog{}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("testenv: nats options: %w", err)
	}
	// NoLog leaves the server without a logger; this one keeps only errors,
	// so a failed start can say why without printing anything.
	srv.SetLoggerV2(logs, false, false, false)

	// Start returns once the accept loop runs, or early when a step such as
	// enabling JetStream failed.
	srv.Start()
	if srv.Addr() == nil {
		shutdownNATS(srv)
		return nil, fmt.Errorf("testenv: nats did not start%s", logs.reason())
	}
	if !srv.ReadyForConnections(natsReadyTimeout) {
		shutdownNATS(srv)
		return nil, fmt.Errorf("%w: nats after %s%s", ErrNotReady, natsReadyTimeout, logs.reason())
	}
	if !srv.JetStreamEnabled() {
		shutdownNATS(srv)
		return nil, fmt.Errorf("%w: nats without jetstream%s", ErrNotReady, logs.reason())
	}
	return srv, nil
}

// serverOptions builds fresh options each time: NewServer fills in defaults
// in the struct it is given, so one value must not serve two servers.
func (n *NATS) serverOptions() *server.Options {
	return &server.Options{
		Host:      "127.0.0.1",
		Port:      n.port,
		JetStream: true,
		StoreDir:  n.storeDir,
		NoLog:     true,
		NoSigs:    true, // signals belong to the process that embeds us
	}
}

// URL is the client URL, nats://127.0.0.1:port.
func (n *NATS) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", n.port)
}

// Port is the client port.
func (n *NATS) Port() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.port
}

// StoreDir is the JetStream store directory.
func (n *NATS) StoreDir() string { return n.storeDir }

// Server is the running server, for what this package does not wrap. After
// Restart it is a different value.
func (n *NATS) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Stop shuts the server down and waits until it has. It removes the store
// if StartNATS created it. Calling it again does nothing.
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	if n.srv != nil {
		shutdownNATS(n.srv)
		n.srv = nil
	}
	n.removeStore()
}

// Restart shuts the server down and starts a new one on the same port and
// store, as a crashed and restarted node would be: clients see the
// connection drop, streams and their messages survive.
func (n *NATS) Restart() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return fmt.Errorf("%w: nats", ErrStopped)
	}
	if n.srv != nil {
		shutdownNATS(n.srv)
		n.srv = nil
	}
	// A failed restart (the port taken meanwhile, say) leaves srv nil; a
	// later Restart may try again and Stop still cleans up.
	if err := n.start(); err != nil {
		return fmt.Errorf("testenv: nats restart on port %d: %w", n.port, err)
	}
	return nil
}

func (n *NATS) removeStore() {
	if n.ownStore {
		_ = os.RemoveAll(n.storeDir)
	}
}

func shutdownNATS(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// natsErrorLog is a server.Logger that keeps the last few errors and drops
// everything else.
type natsErrorLog struct {
	mu     sync.Mutex
	errors []string
}

const natsErrorsKept = 3

func (l *natsErrorLog) keep(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, fmt.Sprintf(format, v...))
	if len(l.errors) > natsErrorsKept {
		l.errors = l.errors[1:]
	}
}

// reason is ": first; second" with the errors kept, or "".
func (l *natsErrorLog) reason() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) == 0 {
		return ""
	}
	return ": " + strings.Join(l.errors, "; ")
}

func (l *natsErrorLog) Fatalf(format string, v ...any) { l.keep(format, v...) }
func (l *natsErrorLog) Errorf(format string, v ...any) { l.keep(format, v...) }
func (l *natsErrorLog) Noticef(string, ...any)         {}
func (l *natsErrorLog) Warnf(string, ...any)           {}
func (l *natsErrorLog) Debugf(string, ...any)          {}
func (l *natsErrorLog) Tracef(string, ...any)          {}
