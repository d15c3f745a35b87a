package mta

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/events"
)

// Bounds of the event side's start and stop. None of them holds up mail: the publisher never
// blocks a session, and what it could not send stays in its outbox for the next start.
const (
	streamSetupTimeout = 10 * time.Second // one EnsureStreams attempt
	streamSetupRetry   = 5 * time.Second  // the pause before the next while NATS is away
	publisherCloseWait = 5 * time.Second  // sending queued transitions at a stop
	natsDrainWait      = 5 * time.Second
)

// eventLink is the node's NATS connection and publisher.
type eventLink struct {
	nc        *nats.Conn
	pub       *events.Publisher
	stopSetup context.CancelFunc
	setupDone chan struct{}
}

// startEvents connects to NATS and starts the publisher. It returns at once when no server
// answers: the client reconnects in the background, and the streams are set up once it can.
func startEvents(nc NATSConfig, cfg Config, log *slog.Logger) (*eventLink, error) {
	if err := os.MkdirAll(nc.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("mta: nats state_dir: %w", err)
	}
	conn, err := events.Connect(nc.ConnConfig, log.With("component", "nats"))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("mta: jetstream: %w", err)
	}
	pub, err := events.NewPublisher(events.PublisherConfig{
		Node:       events.Node{Node: cfg.Node, Cluster: cfg.Cluster, Model: cfg.Model, Limit: cfg.Limit},
		JS:         js,
		SeqFile:    filepath.Join(nc.StateDir, "sequence"),
		OutboxFile: filepath.Join(nc.StateDir, "outbox"),
		Logger:     log,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ev := &eventLink{nc: conn, pub: pub, stopSetup: cancel, setupDone: make(chan struct{})}
	go ev.setupStreams(ctx, js, nc.StreamReplicas, log)
	return ev, nil
}

// setupStreams creates or updates the streams, retrying while NATS is away.
func (ev *eventLink) setupStreams(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) {
	defer close(ev.setupDone)
	for {
		actx, cancel := context.WithTimeout(ctx, streamSetupTimeout)
		err := events.EnsureStreams(actx, js, replicas)
		cancel()
		if err == nil {
			log.Info("event streams ready", "replicas", replicas)
			return
		}
		log.Warn("event streams not set up yet; retrying", "err", err, "retry_in", streamSetupRetry)
		select {
		case <-time.After(streamSetupRetry):
		case <-ctx.Done():
			return
		}
	}
}

// close sends what the publisher holds, bounded, then drains the connection. Safe on nil.
func (ev *eventLink) close(log *slog.Logger) {
	if ev == nil {
		return
	}
	ev.stopSetup()
	<-ev.setupDone
	ctx, cancel := context.WithTimeout(context.Background(), publisherCloseWait)
	defer cancel()
	if err := ev.pub.Close(ctx); err != nil {
		log.Warn("events left in the outbox for the next start", "err", err)
	}
	// Drain flushes what the client still buffers and closes; it runs in the background.
	if err := ev.nc.Drain(); err != nil {
		ev.nc.Close()
		return
	}
	deadline := time.Now().Add(natsDrainWait)
	for !ev.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ev.nc.Close()
}
