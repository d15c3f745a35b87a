// Package mta is the mail transport agent: an SMTP server on go-smtp whose concurrent sessions
// are capped by the model's process limit, with the stress state machine those slots drive, a
// durable spool, relay delivery with retries and bounces, a recipient policy that is no open
// relay, load samples and stress transitions for the event stream, and Prometheus metrics.
package mta

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is one MTA node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mailLog  *slog.Logger
	metrics  *metrics
	pool     *slotPool
	spool    *spool
	delivery *delivery
	smtp     *smtp.Server
	routing  atomic.Pointer[routing] // swapped whole by Reload
	tuning   atomic.Pointer[tuning]  // swapped whole by Reload
	rates    *rateLimiter
	cert     *serverCert // nil without STARTTLS
	control  *controlServer
	holdMu   sync.Mutex // serialises edits of the hold file

	draining   atomic.Bool
	closingNow atomic.Bool   // Close, or a Shutdown past its deadline: sockets close without a linger
	seq        atomic.Uint64 // session and queue id counter

	mu        sync.Mutex
	closed    bool
	listeners []*slotListener

	stopSampler chan struct{}
	samplerDone chan struct{}

	messagesAccepted, messagesRejected, messagesDelivered, messagesBounced atomic.Uint64
	sessionsRejected                                                       atomic.Uint64
}

// Snapshot is the node's state at one moment, for reports and end-of-run waits.
type Snapshot struct {
	Active, Waiting, PeakActive, PeakDemand, QueueDepth  int
	InStress                                             bool
	Episode                                              string // current episode id, "" outside stress
	StressPercent                                        float64
	Episodes                                             []Episode
	SessionsServed, SessionsTempfailed, SessionsRejected uint64
	MessagesAccepted, MessagesDelivered, MessagesBounced uint64
}

// Episode is one stress episode; Exited is nil while it lasts.
type Episode struct {
	ID         string
	Entered    time.Time
	Exited     *time.Time
	PeakDemand int
}

// New validates cfg, recovers the spool (queued mail resumes delivery, torn records are set
// aside), continues a stress episode left open by the last run, and starts delivery and the
// load sampler. It does not listen: call Serve.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDerived()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, stopSampler: make(chan struct{}), samplerDone: make(chan struct{})}
	s.log = cfg.Logger.With("node", cfg.Node)
	s.mailLog = s.log.With("log", "mail")
	s.routing.Store(newRouting(cfg))
	s.tuning.Store(newTuning(cfg))
	s.rates = newRateLimiter(cfg.RateLimits, s.log.With("component", "rates"))
	s.metrics = newMetrics(cfg, s)
	s.pool = newSlotPool(s)
	s.delivery = newDelivery(s)
	if err := s.setupTLS(); err != nil {
		return nil, err
	}

	sp, recovered, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.MinFreeBytes, s.log)
	if err != nil {
		return nil, err
	}
	s.spool = sp
	if err := s.pool.stress.restore(); err != nil {
		sp.close()
		return nil, err
	}
	s.smtp = s.newSMTP()
	if s.delivery.holdAt, err = readHold(cfg.SpoolDir); err != nil {
		sp.close()
		return nil, fmt.Errorf("mta: hold file: %w", err)
	}
	if err := s.startControl(); err != nil {
		sp.close()
		return nil, err
	}
	for _, q := range recovered {
		s.delivery.add(q)
	}
	s.delivery.start()
	go s.sample()
	s.logConfig(len(recovered))
	return s, nil
}

func (s *Server) newSMTP() *smtp.Server {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = s.cfg.MaxRecipients
	// RFC 5321 section 4.5.3.1.6 allows 1000 octets a line; go-smtp's default doubles it for
	// clients that overshoot, and so do we.
	srv.MaxLineLength = 2000
	// The server-wide timeouts are the longest a session may have; slotConn clamps each
	// connection to its own.
	srv.ReadTimeout = maxCommandTimeout
	srv.WriteTimeout = maxCommandTimeout
	// No TLSConfig: the connection wrapper runs STARTTLS itself (starttls.go).
	srv.ErrorLog = smtpLogger{s.log.With("component", "go-smtp")}
	return srv
}

func (s *Server) logConfig(recovered int) {
	c := s.cfg
	s.log.Info("mta started", "cluster", c.Cluster, "model", c.Model, "limit", c.Limit, "hostname", c.Hostname,
		"domains", c.Domains, "users", len(c.Users), "relay_networks", fmt.Sprint(c.RelayNetworks), "relay", c.Relay,
		"transports", len(c.Transports), "starttls", c.TLSCertFile != "", "spool", c.SpoolDir, "slot_wait", c.SlotWait, "wait_max", c.WaitMax,
		"cooldown", c.Cooldown, "client_cap", c.ClientCap, "command_timeout", c.CommandTimeout,
		"stress_command_timeout", c.StressCommandTimeout, "min_data_rate", c.MinDataRate,
		"max_message_bytes", c.MaxMessageBytes, "max_recipients", c.MaxRecipients, "hopcount_limit", c.HopcountLimit,
		"retry_min", c.RetryMin, "retry_max", c.RetryMax, "give_up", c.GiveUp, "recovered_messages", recovered)
}

// Serve accepts connections on l through the slot listener and serves them until Shutdown or
// Close, after which it returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error { return s.serveKind(l, listenSlots) }

// ServeExempt serves l without slots: its connections never wait, never count toward stress
// and always run with normal settings (submission, trusted networks).
func (s *Server) ServeExempt(l net.Listener) error { return s.serveKind(l, listenExempt) }

// listenKind is what a listener's connections are: slot holders, exempt, or behind a balancer.
type listenKind int

const (
	listenSlots listenKind = iota
	listenExempt
	listenProxy
)

func (s *Server) serveKind(l net.Listener, kind listenKind) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	sl := newSlotListener(l, s.pool, kind)
	s.listeners = append(s.listeners, sl)
	s.mu.Unlock()

	err := s.smtp.Serve(sl)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || err == nil {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting, answers waiting and idle sessions with 421, lets sessions in a
// transaction finish until ctx ends, then says 421 to the rest and closes them. It stops
// delivery (attempts in flight get until ctx too) and keeps the spool for the next start.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.beginClose() {
		return ErrServerClosed
	}
	s.draining.Store(true)
	s.closeListeners()
	for _, c := range s.pool.close() {
		c.wake() // an idle session sees draining and says 421
	}
	// go-smtp waits for its sessions; its error is only ever ctx's or a listener's close.
	_ = s.smtp.Shutdown(ctx)
	if ctx.Err() != nil {
		s.closingNow.Store(true)
		s.pool.cutLingers()
		for _, c := range s.pool.live() {
			c.goodbyeIfFree(replyShutdown)
			c.closeNow()
		}
	}
	s.waitSessions(5 * time.Second)
	s.stopBackground(ctx)
	return ctx.Err()
}

// Close stops everything at once: connections are closed without a word. The spool is kept.
func (s *Server) Close() error {
	if !s.beginClose() {
		return ErrServerClosed
	}
	s.draining.Store(true)
	s.closingNow.Store(true)
	s.pool.cutLingers()
	s.closeListeners()
	for _, c := range s.pool.close() {
		c.closeNow()
	}
	err := s.smtp.Close()
	s.waitSessions(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.stopBackground(ctx)
	if err == smtp.ErrServerClosed {
		err = nil
	}
	return err
}

func (s *Server) beginClose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	return true
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	ls := s.listeners
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}

// waitSessions waits, bounded, for go-smtp's connection goroutines to close their connections.
func (s *Server) waitSessions(d time.Duration) {
	deadline := time.Now().Add(d)
	for len(s.pool.live()) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.pool.bg.Wait()
}

func (s *Server) stopBackground(ctx context.Context) {
	s.stopControl()
	close(s.stopSampler)
	<-s.samplerDone
	s.delivery.stop(ctx)
	if err := s.spool.close(); err != nil {
		s.log.Error("spool not closed cleanly", "err", err)
	}
}

// Registry is this server's Prometheus registry; serve it with promhttp.HandlerFor.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Snapshot returns the node's current state and counters.
func (s *Server) Snapshot() Snapshot {
	p := s.pool
	p.mu.Lock()
	snap := Snapshot{
		Active:             p.stress.state.Active,
		Waiting:            p.waiting.Len(),
		PeakActive:         p.peakActive,
		PeakDemand:         p.stress.peakDemand,
		InStress:           p.stress.state.InStress,
		Episode:            p.stress.episode,
		StressPercent:      stressPercent(p.stressed, p.stress.state.Active),
		Episodes:           cloneEpisodes(p.stress.episodes),
		SessionsServed:     p.served,
		SessionsTempfailed: p.tempfailed,
	}
	p.mu.Unlock()
	snap.QueueDepth = s.spool.depth()
	snap.SessionsRejected = s.sessionsRejected.Load()
	snap.MessagesAccepted = s.messagesAccepted.Load()
	snap.MessagesDelivered = s.messagesDelivered.Load()
	snap.MessagesBounced = s.messagesBounced.Load()
	return snap
}

func stressPercent(stressed, active int) float64 {
	if active == 0 {
		return 0
	}
	return 100 * float64(stressed) / float64(active)
}

func cloneEpisodes(in []Episode) []Episode {
	out := make([]Episode, len(in))
	for i, e := range in {
		out[i] = e
		if e.Exited != nil {
			t := *e.Exited
			out[i].Exited = &t
		}
	}
	return out
}

// enqueue spools a message durably, logs it as queued, and hands it to delivery. ss is the
// session it came from, nil for a bounce.
func (s *Server) enqueue(env envelope, body []byte, ss *session) error {
	q, err := s.spool.put(env, body)
	if err != nil {
		return err
	}
	s.mailQueued(ss, env, len(body))
	s.delivery.add(q)
	return nil
}

// sessionEnded is called once per connection when it closes.
func (s *Server) sessionEnded(c *slotConn) {
	c.mu.Lock()
	accepted, errs := c.accepted, c.errs
	c.mu.Unlock()
	c.log.Debug("session ended", "duration", time.Since(c.start), "accepted", accepted, "errors", errs)
}

// nextSessionID names a connection in the log; unique within this process.
func (s *Server) nextSessionID() string { return "s" + strconv.FormatUint(s.seq.Add(1), 36) }

// nextQueueID names a message: the time in nanoseconds and a counter, so ids stay unique
// across restarts and sort by arrival.
func (s *Server) nextQueueID() string {
	return fmt.Sprintf("%X%04X", time.Now().UnixNano(), s.seq.Add(1)&0xffff)
}

// now is real time, for envelopes: delivery and give-up run on real time.
func (s *Server) now() time.Time { return time.Now() }

// smtpLogger sends go-smtp's internal errors to the operator log at debug level: they are
// mostly clients that went away.
type smtpLogger struct{ log *slog.Logger }

func (l smtpLogger) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l smtpLogger) Println(v ...any)               { l.log.Debug(fmt.Sprint(v...)) }
