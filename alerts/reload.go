package alerts

import (
	"crypto/tls"
	"maps"
	"slices"
	"time"
)

// live is the part of the configuration that Reload replaces: the settings of the rules, the
// mailer, and the retry and claim timing. It is never changed once published; a reload
// publishes a new one. Each step (an event applied, a sweep, one delivery) loads it once and
// keeps what it loaded, so that a reload in the middle of a step never mixes two configs: a
// delivery in progress finishes with the mailer it began with.
type live struct {
	// cfg is the effective config: the settings that need a restart as New filled them in,
	// the others as last applied. Read RetryMin, RetryMax and SendTimeout from here.
	cfg    Config
	rules  RuleConfig
	mailer *Mailer
	lease  time.Duration // a claim older than this was abandoned by a crashed replica
}

// newLive builds the settings of cfg, which fill has completed. Admin and Rosters are copied,
// so that a caller reusing its Config cannot change them under the running service.
func newLive(cfg Config) *live {
	cfg.Admin = slices.Clone(cfg.Admin)
	if cfg.Rosters != nil {
		rosters := make(map[string][]string, len(cfg.Rosters))
		for c, nodes := range cfg.Rosters {
			rosters[c] = slices.Clone(nodes)
		}
		cfg.Rosters = rosters
	}
	return &live{
		cfg: cfg,
		rules: RuleConfig{
			Settle:      max(cfg.SettleWindow, 0),
			Catalog:     cfg.Catalog,
			Rosters:     cfg.Rosters,
			MaxAlertAge: max(cfg.MaxAlertAge, 0),
		},
		mailer: &Mailer{
			Relay: cfg.Relay, From: cfg.From, To: cfg.Admin, HeloName: cfg.HeloName,
			RequireTLS: cfg.RequireTLS, TLSConfig: cfg.TLSConfig, Timeout: cfg.SendTimeout,
		},
		// The lease follows the send timeout: an attempt cannot outlast it, so a claim older
		// than the lease belongs to a replica that is gone.
		lease: cfg.SendTimeout + 30*time.Second,
	}
}

// live returns the settings in force now.
func (s *Service) live() *live { return s.cur.Load() }

// Reload applies cfg to the service, running or not. It checks cfg as New does, with the same
// errors; on an error nothing changes. Otherwise it applies, at once for every consumer and
// the delivery loop, what can change without reconnecting: Admin, From, Relay, HeloName,
// RequireTLS, TLSConfig (a new Mailer), Rosters, SettleWindow, MaxAlertAge, RetryMin, RetryMax
// and SendTimeout. An event being applied keeps the rules it began with, and a delivery in
// progress the mailer it began with; the next ones use cfg. Alerts already in the outbox go
// out with the new mailer: to the new admin addresses, through the new relay.
//
// JS, Durable, Bucket, Replicas, Replica, AckWait, Tick and Catalog need a restart: they are
// kept as running, and restart names those that differ, by their config file keys ("nats" for
// JS, "models" for Catalog, "Tick" which the file does not set). They keep being named until a
// restart, as the MTA's reload does. Clock and Logger are the caller's plumbing: the running
// ones stay, and a change is not reported.
//
// Reload logs what it applied; the caller logs restart, together with any keys of its own
// that need a restart (the command's nats block).
func (s *Service) Reload(cfg Config) (restart []string, err error) {
	randomReplica := cfg.Replica == ""
	if err := cfg.fill(); err != nil {
		return nil, err
	}

	// One reload at a time, so that what is compared is what is replaced.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.live()
	restart = s.restartKeys(cfg, randomReplica)

	next := prev.cfg
	next.Admin, next.From, next.Relay = cfg.Admin, cfg.From, cfg.Relay
	next.HeloName, next.RequireTLS, next.TLSConfig = cfg.HeloName, cfg.RequireTLS, cfg.TLSConfig
	next.Rosters, next.SettleWindow, next.MaxAlertAge = cfg.Rosters, cfg.SettleWindow, cfg.MaxAlertAge
	next.RetryMin, next.RetryMax, next.SendTimeout = cfg.RetryMin, cfg.RetryMax, cfg.SendTimeout
	applied := reloadedKeys(prev.cfg, next)

	// The mailer is built anew even when nothing changed, as the MTA reads its certificate
	// again on every SIGHUP: a CA file rewritten in place is in cfg.TLSConfig by now.
	l := newLive(next)
	s.cur.Store(l)
	s.log.Info("config reloaded", "applied", applied, "alerts", l.cfg)
	return restart, nil
}

// restartKeys names the settings of cfg, filled in, that differ from the running ones and
// need a restart. randomReplica: cfg gave no replica name.
func (s *Service) restartKeys(cfg Config, randomReplica bool) []string {
	run := s.cfg
	var keys []string
	add := func(key string, differs bool) {
		if differs {
			keys = append(keys, key)
		}
	}
	// jetstream.New hands out a pointer, so comparing the interfaces cannot panic.
	add("nats", cfg.JS != run.JS)
	add("durable", cfg.Durable != run.Durable)
	add("bucket", cfg.Bucket != run.Bucket)
	add("replicas", cfg.Replicas != run.Replicas)
	add("ack_wait", cfg.AckWait != run.AckWait)
	// Without a name, fill drew a fresh one: no change when the running name was drawn too, a
	// change when it was given, since a restart would draw one. The drawn name given back (as
	// in Config()) is no change either.
	add("replica", (randomReplica && !s.randomReplica) || (!randomReplica && cfg.Replica != run.Replica))
	add("models", !slices.Equal(cfg.Catalog.Models, run.Catalog.Models))
	add("Tick", cfg.Tick != run.Tick)
	return keys
}

// reloadedKeys names the reloadable settings that differ between a and b, by file key.
func reloadedKeys(a, b Config) []string {
	var keys []string
	add := func(key string, differs bool) {
		if differs {
			keys = append(keys, key)
		}
	}
	add("admin", !slices.Equal(a.Admin, b.Admin))
	add("from", a.From != b.From)
	add("relay", a.Relay != b.Relay)
	add("helo_name", a.HeloName != b.HeloName)
	add("require_tls", a.RequireTLS != b.RequireTLS)
	add("relay_tls", !sameRelayTLS(a.TLSConfig, b.TLSConfig))
	add("settle_window", a.SettleWindow != b.SettleWindow)
	add("rosters", !maps.EqualFunc(a.Rosters, b.Rosters, slices.Equal))
	add("retry_min", a.RetryMin != b.RetryMin)
	add("retry_max", a.RetryMax != b.RetryMax)
	add("max_alert_age", a.MaxAlertAge != b.MaxAlertAge)
	add("send_timeout", a.SendTimeout != b.SendTimeout)
	return keys
}

// sameRelayTLS compares what the file can set of the relay's TLS (relay_tls: ca_file,
// server_name) and the usual fields besides. It decides only what the log names: the new
// mailer takes the new config either way.
func sameRelayTLS(a, b *tls.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ServerName == b.ServerName && a.MinVersion == b.MinVersion &&
		a.MaxVersion == b.MaxVersion && a.InsecureSkipVerify == b.InsecureSkipVerify &&
		a.RootCAs.Equal(b.RootCAs)
}
