package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of the publisher.
var (
	// ErrPublisherClosed is returned by Close when it is called twice.
	ErrPublisherClosed = errors.New("events: publisher closed")
	// ErrNotConnected wraps a failed publish while the client has no server: nats.go then
	// reports odd reasons, such as headers not being supported before the first connect.
	ErrNotConnected = errors.New("events: not connected to NATS")
)

// PublisherConfig configures one node's publisher.
type PublisherConfig struct {
	Node Node
	JS   jetstream.JetStream
	// Clock stamps load samples; transitions carry their own times. Nil means real time.
	Clock Clock
	// SeqFile keeps the sequence counter across restarts, beside the spool. Empty: memory only.
	SeqFile string
	// OutboxFile keeps unacknowledged transitions across NATS outages and restarts, beside the
	// spool. Empty: memory only.
	OutboxFile string
	Logger     *slog.Logger
	// PublishTimeout bounds one publish attempt; RetryDelay is the pause after a failed one.
	PublishTimeout time.Duration
	RetryDelay     time.Duration
}

// PublisherStats counts what the publisher did, for metrics.
type PublisherStats struct {
	Published uint64
	Coalesced uint64 // samples replaced by a newer one before they could be sent
	Failures  uint64 // failed publish attempts
	Pending   int    // transitions not yet acknowledged
	// LastLatency is how long the last acknowledged publish took.
	LastLatency time.Duration
}

// Publisher sends a node's events to JetStream from its own goroutine, so a mail session never
// waits on NATS. Transitions are queued in order, written to the outbox file, and retried with
// the same Nats-Msg-Id until acknowledged, also across a restart; load samples are coalesced,
// latest wins, while NATS is slow or away.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu       sync.Mutex
	seq      uint64 // last sequence assigned
	reserved uint64 // sequences up to this one are reserved on disk
	pending  []*Envelope
	durable  int // pending[:durable] are in the outbox file
	sample   *Envelope
	stats    PublisherStats
	closed   bool
	// queued holds when each unsent envelope was queued, for the latency metric.
	queued map[*Envelope]time.Time

	metrics *publisherMetrics

	outbox outbox
	// failStreak counts failed attempts since the last success, failSince is when the first
	// of them was; only the run goroutine uses them.
	failStreak int
	failSince  time.Time

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// NewPublisher starts a publisher. It reads the sequence file, so sequences stay monotonic
// across restarts.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := ValidName(cfg.Node.Cluster); err != nil {
		return nil, err
	}
	if err := ValidName(cfg.Node.Node); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 500 * time.Millisecond
	}
	p := &Publisher{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "events"),
		outbox: outbox{path: cfg.OutboxFile},
		queued: make(map[*Envelope]time.Time),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	start, err := readSeq(cfg.SeqFile)
	if err != nil {
		return nil, err
	}
	if start == 0 {
		start = freshSeq()
	}
	p.seq, p.reserved = start, start
	p.metrics = newPublisherMetrics(p)
	left, torn, err := p.outbox.load()
	if err != nil {
		return nil, err
	}
	if torn > 0 {
		p.log.Warn("torn lines in the event outbox skipped", "file", cfg.OutboxFile, "lines", torn)
	}
	if len(left) > 0 {
		p.log.Info("resending transitions from the outbox", "count", len(left))
	}
	p.pending, p.durable = left, len(left)
	for _, env := range left {
		p.queued[env] = time.Now()
	}
	go p.run()
	return p, nil
}

// Sample queues a load sample stamped now; an unsent older sample is dropped.
func (p *Publisher) Sample(s LoadSample) {
	s.Node = p.cfg.Node
	p.enqueue(TypeLoadSample, p.cfg.Clock.Now(), &s)
}

// Entered queues a stress entry, stamped with its entry time.
func (p *Publisher) Entered(t StressTransition) {
	t.Node = p.cfg.Node
	p.enqueue(TypeStressEntered, t.Entered, &t)
}

// Exited queues a stress exit, stamped with its exit time.
func (p *Publisher) Exited(t StressTransition) {
	t.Node = p.cfg.Node
	at := p.cfg.Clock.Now()
	if t.Exited != nil {
		at = *t.Exited
	}
	p.enqueue(TypeStressExited, at, &t)
}

// Stats returns a snapshot of the counters.
func (p *Publisher) Stats() PublisherStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.Pending = len(p.pending)
	return st
}

func (p *Publisher) enqueue(typ string, at time.Time, data any) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.log.Warn("event after close dropped", "type", typ)
		return
	}
	seq := p.nextSeqLocked()
	env, err := Encode(typ, seq, at, p.cfg.Node, data)
	if err != nil {
		p.mu.Unlock()
		p.log.Error("event not encoded", "type", typ, "err", err)
		return
	}
	p.queued[env] = time.Now()
	if typ == TypeLoadSample {
		if p.sample != nil {
			p.stats.Coalesced++
			delete(p.queued, p.sample)
		}
		p.sample = env
	} else {
		p.pending = append(p.pending, env)
	}
	p.mu.Unlock()

	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// nextSeqLocked assigns the next sequence, reserving a new block on disk when one runs out.
// Caller holds mu. A failed reservation is logged and the counter goes on in memory: losing
// monotonicity across a restart is better than stopping events.
func (p *Publisher) nextSeqLocked() uint64 {
	p.seq++
	if p.seq > p.reserved {
		p.reserved = p.seq + seqBlock - 1
		if err := writeSeq(p.cfg.SeqFile, p.reserved+1); err != nil {
			p.log.Error("sequence not saved", "file", p.cfg.SeqFile, "err", err)
		}
	}
	return p.seq
}

func (p *Publisher) run() {
	defer close(p.done)
	for {
		// Close may give up on a long queue while NATS is up: look for it between sends.
		select {
		case <-p.stop:
			return
		default:
		}
		env, isSample := p.next()
		if env == nil {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				return
			}
		}
		if !isSample {
			p.persist()
		}
		if err := p.publish(env); err != nil {
			p.failed(env, err)
			select {
			case <-time.After(p.cfg.RetryDelay):
			case <-p.stop:
				return
			}
			continue
		}
		p.recovered()
		p.sent(env, isSample)
	}
}

// failed counts a failed attempt. Only the first of a streak is a warning: NATS away for an
// hour would otherwise log two lines a second.
func (p *Publisher) failed(env *Envelope, err error) {
	p.mu.Lock()
	p.stats.Failures++
	p.mu.Unlock()
	p.failStreak++
	if p.failStreak == 1 {
		p.failSince = time.Now()
		p.log.Warn("event publish failed; retrying until NATS acknowledges, mail is not held up",
			"id", env.ID, "type", env.Type, "err", err)
		return
	}
	p.log.Debug("event publish failed again", "id", env.ID, "attempts", p.failStreak, "err", err)
}

// recovered ends a streak of failures, saying how long it lasted.
func (p *Publisher) recovered() {
	if p.failStreak == 0 {
		return
	}
	p.log.Info("events flowing again", "failed_attempts", p.failStreak,
		"after", time.Since(p.failSince).Round(time.Millisecond))
	p.failStreak = 0
}

// next picks what to send: transitions first and in order, then the latest sample.
func (p *Publisher) next() (*Envelope, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) > 0 {
		return p.pending[0], false
	}
	return p.sample, p.sample != nil
}

func (p *Publisher) sent(env *Envelope, isSample bool) {
	p.mu.Lock()
	p.stats.Published++
	if at, ok := p.queued[env]; ok {
		p.metrics.observe(isSample, time.Since(at))
		delete(p.queued, env)
	}
	if isSample {
		if p.sample == env {
			p.sample = nil
		}
		p.mu.Unlock()
		return
	}
	p.pending = p.pending[1:]
	p.durable--
	if p.outbox.path == "" {
		p.mu.Unlock()
		return
	}
	left := append([]*Envelope(nil), p.pending[:p.durable]...)
	p.mu.Unlock()

	// The rewrite fsyncs, so it runs outside the lock that enqueue takes.
	if err := p.outbox.replace(left); err != nil {
		p.log.Error("event outbox not rewritten", "file", p.cfg.OutboxFile, "err", err)
	}
}

// persist appends the transitions not yet in the outbox. Only the run goroutine calls it and
// removes from pending, so the slice it copies stays valid. A failed write is logged: events keep
// flowing, without the crash safety.
func (p *Publisher) persist() {
	p.mu.Lock()
	fresh := append([]*Envelope(nil), p.pending[p.durable:]...)
	p.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	if err := p.outbox.append(fresh); err != nil {
		p.log.Error("event outbox not written", "file", p.cfg.OutboxFile, "err", err)
	}
	p.mu.Lock()
	p.durable += len(fresh)
	p.mu.Unlock()
}

func (p *Publisher) publish(env *Envelope) error {
	body, err := json.Marshal(env)
	if err != nil {
		return err
	}
	subject := StressSubject(p.cfg.Node.Cluster, p.cfg.Node.Node)
	if env.Type == TypeLoadSample {
		subject = LoadSubject(p.cfg.Node.Cluster, p.cfg.Node.Node)
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Content-Type", ContentType)
	msg.Header.Set(jetstream.MsgIDHeader, env.ID)

	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	if _, err := p.cfg.JS.PublishMsg(ctx, msg); err != nil {
		if nc := p.cfg.JS.Conn(); nc != nil && !nc.IsConnected() {
			return fmt.Errorf("%w (%s): %v", ErrNotConnected, nc.Status(), err)
		}
		return err
	}
	p.mu.Lock()
	p.stats.LastLatency = time.Since(start)
	p.mu.Unlock()
	return nil
}

// Close stops the publisher after trying, until ctx ends, to send the queued transitions and
// the last sample. It returns an error naming what was left unsent.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPublisherClosed
	}
	p.closed = true
	p.mu.Unlock()

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st := p.Stats()
		p.mu.Lock()
		idle := len(p.pending) == 0 && p.sample == nil
		p.mu.Unlock()
		if idle {
			break
		}
		select {
		case <-ctx.Done():
			close(p.stop)
			<-p.done
			return fmt.Errorf("events: %d transitions unsent at close: %w", st.Pending, ctx.Err())
		case <-tick.C:
		}
	}
	close(p.stop)
	<-p.done
	return nil
}
