package alerts

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
)

// Defaults of Config.
const (
	DefaultDurable  = "mtastress-alerts"
	DefaultBucket   = "mtastress_alerts"
	DefaultRetryMin = time.Second
	DefaultRetryMax = time.Minute
	DefaultTick     = time.Second
	DefaultAckWait  = 30 * time.Second
	// DefaultMaxAlertAge: an operator wants an episode that began while the service was down
	// for a while, not last week's on a first start.
	DefaultMaxAlertAge = 24 * time.Hour
)

// Errors of New and Run.
var (
	ErrConfig  = errors.New("alerts: bad config")
	ErrRunning = errors.New("alerts: service already running")
	ErrSetup   = errors.New("alerts: setup failed")
)

// Clock is the time source of the rules; the simulator's shared clock satisfies it.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	JS       jetstream.JetStream // required
	Durable  string              // durable consumer name on both streams; DefaultDurable
	Bucket   string              // KV bucket of the state; DefaultBucket
	Replicas int                 // of the streams and the bucket; 1

	Admin      []string // recipients; required
	From       string   // sender; required
	Relay      string   // SMTP relay host:port; required
	HeloName   string
	RequireTLS bool
	TLSConfig  *tls.Config

	Catalog *scenarios.Catalog  // nil: scenarios.DefaultCatalog()
	Rosters map[string][]string // configured cluster rosters, by cluster
	Clock   Clock               // nil: real time
	Logger  *slog.Logger        // nil: discard
	// SettleWindow of the frequency rule; 0 means DefaultSettle, negative means none.
	SettleWindow time.Duration
	// MaxAlertAge: entries older than this when applied are counted but not mailed (see
	// RuleConfig); 0 means DefaultMaxAlertAge, negative means no limit.
	MaxAlertAge time.Duration

	RetryMin, RetryMax time.Duration // backoff while the relay fails
	SendTimeout        time.Duration // one delivery attempt; DefaultSendTimeout
	Tick               time.Duration // how often settle windows and retries are looked at
	AckWait            time.Duration // of the consumers; DefaultAckWait
	// Replica names this instance in claims; "" means a random id.
	Replica string
}

// Service feeds the rules from JetStream and sends what they decide.
type Service struct {
	// cfg is the config as New filled it in, never written afterwards, so it is read without
	// a lock. The settings that Reload changes are read from cur instead: cfg keeps their
	// values at start.
	cfg           Config
	randomReplica bool // cfg.Replica was drawn by New, not given
	log           *slog.Logger
	cur           atomic.Pointer[live] // the settings in force; see Reload
	reloadMu      sync.Mutex           // serialises Reload
	kick          chan struct{}

	mu       sync.Mutex
	running  bool
	store    store
	known    map[string]bool // clusters seen by this replica
	sent     []SentAlert
	started  time.Time
	handlers sync.WaitGroup
	stopping bool
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Service, error) {
	randomReplica := cfg.Replica == ""
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:           cfg,
		randomReplica: randomReplica,
		log:           cfg.Logger.With("component", "alerts", "replica", cfg.Replica),
		kick:          make(chan struct{}, 1),
		known:         make(map[string]bool),
	}
	s.cur.Store(newLive(cfg))
	return s, nil
}

func (c *Config) fill() error {
	switch {
	case c.JS == nil:
		return fmt.Errorf("%w: no JetStream (JS)", ErrConfig)
	case len(c.Admin) == 0:
		return fmt.Errorf("%w: no admin address to send alerts to", ErrConfig)
	case c.From == "":
		return fmt.Errorf("%w: no sender address (From)", ErrConfig)
	case c.Relay == "":
		return fmt.Errorf("%w: no SMTP relay (host:port)", ErrConfig)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RetryMin, DefaultRetryMin)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.SendTimeout, DefaultSendTimeout)
	def(&c.Tick, DefaultTick)
	def(&c.AckWait, DefaultAckWait)
	if c.SettleWindow == 0 {
		c.SettleWindow = DefaultSettle
	}
	if c.MaxAlertAge == 0 {
		c.MaxAlertAge = DefaultMaxAlertAge
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	if c.Catalog == nil {
		c.Catalog = scenarios.DefaultCatalog()
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Replica == "" {
		b := make([]byte, 4)
		rand.Read(b)
		c.Replica = hex.EncodeToString(b)
	}
	return nil
}

// Run sets up streams, bucket and consumers, then applies events and sends alerts until ctx
// ends. It returns nil after a clean stop; unacknowledged events are redelivered to the next run.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrRunning
	}
	s.running, s.stopping = true, false
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()

	if err := s.setup(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.started = time.Now()
	s.mu.Unlock()
	stopStatus := s.serveStatus()
	defer stopStatus()
	l := s.live()
	s.log.Info("alert service started", "durable", s.cfg.Durable, "bucket", s.cfg.Bucket,
		"relay", l.cfg.Relay, "admin", l.cfg.Admin, "settle", l.rules.Settle)

	var stops []func()
	for _, stream := range []string{events.StreamEvents, events.StreamLoad} {
		stop, err := s.consume(ctx, stream)
		if err != nil {
			for _, st := range stops {
				st()
			}
			return err
		}
		stops = append(stops, stop)
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		s.deliverLoop(ctx)
	}()

	<-ctx.Done()
	for _, stop := range stops {
		stop()
	}
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.handlers.Wait()
	<-delivered
	s.log.Info("alert service stopped")
	return nil
}

// setup creates the streams and the bucket, or finds them as they are: every replica and
// every MTA node may do it.
func (s *Service) setup(ctx context.Context) error {
	if err := events.EnsureStreams(ctx, s.cfg.JS, s.cfg.Replicas); err != nil {
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}
	want := jetstream.KeyValueConfig{
		Bucket:      s.cfg.Bucket,
		Description: "mtastress alert state and outbox, one key per cluster",
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	}
	// A bucket already as wanted is opened, not updated, for the reason events.EnsureStreams
	// gives: an update rewrites its stream's config while watchers may be creating consumers.
	var kv jetstream.KeyValue
	st, err := s.cfg.JS.Stream(ctx, "KV_"+want.Bucket)
	if err == nil && sameBucket(st.CachedInfo().Config, want) {
		kv, err = s.cfg.JS.KeyValue(ctx, want.Bucket)
	} else {
		kv, err = s.cfg.JS.CreateOrUpdateKeyValue(ctx, want)
	}
	if err != nil {
		return fmt.Errorf("%w: bucket %s: %v", ErrSetup, s.cfg.Bucket, err)
	}
	s.mu.Lock()
	s.store = store{kv: kv}
	s.mu.Unlock()
	return nil
}

// sameBucket reports whether a bucket's stream already holds the settings setup gives it.
func sameBucket(have jetstream.StreamConfig, want jetstream.KeyValueConfig) bool {
	return have.Description == want.Description && have.Storage == want.Storage && have.Replicas == want.Replicas
}

// consume starts the durable consumer of one stream and returns how to stop it.
func (s *Service) consume(ctx context.Context, stream string) (func(), error) {
	cons, err := s.cfg.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "mtastress alert service",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    -1, // an event that cannot be applied now waits; decoding errors are terminated
	})
	if err != nil {
		return nil, fmt.Errorf("%w: consumer %s on %s: %v", ErrSetup, s.cfg.Durable, stream, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { s.onMessage(ctx, msg) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.log.Warn("consumer trouble, retrying", "stream", stream, "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("%w: consume %s: %v", ErrSetup, stream, err)
	}
	return cc.Stop, nil
}

// onMessage counts the handler in, so Run can wait for it to finish.
func (s *Service) onMessage(ctx context.Context, msg jetstream.Msg) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return // not acked: redelivered to the next run
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()
	s.handle(ctx, msg)
}

// handle applies one event: decode, apply under compare-and-set with the alerts it decides
// put in the outbox of the same write, and only then ack.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	ev, err := events.Decode(msg.Data())
	if err != nil {
		s.log.Error("event terminated: cannot decode", "subject", msg.Subject(), "err", err)
		msg.Term()
		return
	}
	cluster := clusterOf(ev)
	// The rules as they are now, for every attempt at this event: a reload meanwhile applies
	// from the next one.
	rules := s.live().rules
	var outcome Outcome
	var decided []SendAlert
	apply := func(r *record) bool {
		r.State, decided, outcome = Apply(r.State, ev, s.cfg.Clock.Now(), rules)
		r.enqueue(decided, time.Now())
		return outcome == Applied
	}
	if err := s.persist(ctx, msg, cluster, apply); err != nil {
		return // shutting down: not acked, so redelivered
	}
	s.noteCluster(cluster)
	s.logOutcome(ev, outcome, decided)
	if err := msg.Ack(); err != nil {
		// Applied and recorded; a redelivery will be skipped as a duplicate.
		s.log.Warn("ack failed", "id", ev.ID, "err", err)
	}
	if len(decided) > 0 {
		s.wake()
	}
}

// persist retries the state update while NATS is unavailable, keeping the message from being
// redelivered meanwhile. Moving on to later events instead would apply them out of order.
func (s *Service) persist(ctx context.Context, msg jetstream.Msg, cluster string,
	fn func(*record) bool,
) error {
	delay := s.live().cfg.RetryMin
	for {
		err := s.store.update(ctx, cluster, fn)
		if err == nil || ctx.Err() != nil {
			return err
		}
		s.log.Warn("state not written, retrying", "cluster", cluster, "err", err)
		msg.InProgress()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, s.live().cfg.RetryMax, s.cfg.AckWait/2)
	}
}

func (s *Service) logOutcome(ev *events.Event, outcome Outcome, decided []SendAlert) {
	switch outcome {
	case Future:
		s.log.Warn("event from the future set aside: check the node's clock", "id", ev.ID,
			"source", ev.Source, "time", ev.Time, "now", s.cfg.Clock.Now())
	case Stale:
		s.log.Info("event older than the week set aside", "id", ev.ID, "time", ev.Time)
	case Duplicate:
		s.log.Debug("duplicate event skipped", "id", ev.ID)
	}
	for _, a := range decided {
		s.log.Info("alert decided", "kind", a.Kind, "key", a.Key, "cluster", a.Cluster, "node", a.Node)
	}
}

func clusterOf(ev *events.Event) string {
	if ev.Sample != nil {
		return ev.Sample.Cluster
	}
	return ev.Transition.Cluster
}

func (s *Service) noteCluster(c string) {
	s.mu.Lock()
	s.known[c] = true
	s.mu.Unlock()
}

func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Sent returns the alerts this instance sent, oldest first.
func (s *Service) Sent() []SentAlert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentAlert(nil), s.sent...)
}

// History returns the alerts every replica sent in the last 8 days.
func (s *Service) History(ctx context.Context) ([]SentAlert, error) {
	return History(ctx, s.cfg.JS, s.cfg.Bucket)
}
