package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
	"github.com/mtastress/mtastress/testenv"
)

// startSink is a recording relay for one test.
func startSink(t *testing.T, opts testenv.SinkOptions) *testenv.Sink {
	t.Helper()
	s, err := testenv.StartSink(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// waitSink returns the relay's messages once it has n, failing after 10 s.
func waitSink(t *testing.T, s *testenv.Sink, n int) []testenv.SinkMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Wait(ctx, n); err != nil {
		t.Fatal(err)
	}
	return s.Messages()
}

// stillSink waits a bounded time and fails unless the relay has exactly n messages.
func stillSink(t *testing.T, s *testenv.Sink, n int, wait time.Duration) {
	t.Helper()
	time.Sleep(wait)
	if got := s.Messages(); len(got) != n {
		t.Fatalf("relay %s has %d messages, want %d: %v", s.Addr(), len(got), n, sinkSubjects(t, got))
	}
}

func header(t *testing.T, m testenv.SinkMessage) mail.Header {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("message from %s does not parse: %v", m.From, err)
	}
	return msg.Header
}

func sinkSubjects(t *testing.T, ms []testenv.SinkMessage) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		out = append(out, header(t, m).Get("Subject"))
	}
	return out
}

func mustReload(t *testing.T, s *Service, cfg Config) {
	t.Helper()
	restart, err := s.Reload(cfg)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if len(restart) > 0 {
		t.Fatalf("Reload reports %v as needing a restart; the test changed none of them", restart)
	}
}

func TestReloadSendsTheNextAlertToTheNewAdminThroughTheNewRelay(t *testing.T) {
	c := cluster("reload-to")
	_, js := startNATS(t)
	before, after := startSink(t, testenv.SinkOptions{}), startSink(t, testenv.SinkOptions{})
	svc := startService(t, js, before.Addr(), nil)

	enter(publisher(t, js, c, "edge-1"), c, "edge-1")
	if m := waitSink(t, before, 1)[0]; m.From != "mtastress@example.test" ||
		!cmp.Equal(m.To, []string{"ops@example.test"}) {
		t.Fatalf("before the reload: from %s to %v", m.From, m.To)
	}

	cfg := svc.Config()
	cfg.Admin = []string{"oncall@example.test", "lead@example.test"}
	cfg.From = "alerts@example.test"
	cfg.Relay = after.Addr()
	mustReload(t, svc.Service, cfg)

	ep, _ := enter(publisher(t, js, c, "edge-2"), c, "edge-2")
	m := waitSink(t, after, 1)[0]
	h := header(t, m)
	if m.From != "alerts@example.test" || !cmp.Equal(m.To, cfg.Admin) {
		t.Errorf("envelope from %s to %v, want from %s to %v", m.From, m.To, cfg.From, cfg.Admin)
	}
	if got, want := h.Get("To"), "oncall@example.test, lead@example.test"; got != want {
		t.Errorf("To: %q, want %q", got, want)
	}
	if got := h.Get("From"); got != "alerts@example.test" {
		t.Errorf("From: %q", got)
	}
	if got := h.Get("X-Mtastress-Key"); got != ep {
		t.Errorf("the new relay got %s, want the alert of episode %s", got, ep)
	}
	stillSink(t, before, 1, 500*time.Millisecond)
	stillSink(t, after, 1, 0)
}

func TestReloadMidEpisodeSendsNoSecondAlert(t *testing.T) {
	c := cluster("reload-mid")
	_, js := startNATS(t)
	before, after := startSink(t, testenv.SinkOptions{}), startSink(t, testenv.SinkOptions{})
	svc := startService(t, js, before.Addr(), nil)
	p := publisher(t, js, c, "edge-1")

	ep, entered := enter(p, c, "edge-1")
	waitSink(t, before, 1)

	// Every setting a reload applies changes, the rules' ones included.
	cfg := svc.Config()
	cfg.Admin, cfg.From, cfg.Relay = []string{"oncall@example.test"}, "alerts@example.test", after.Addr()
	cfg.HeloName = "alerts-2.example.test"
	cfg.Rosters = map[string][]string{c: {"edge-1"}}
	cfg.SettleWindow, cfg.MaxAlertAge = 2*quiet, time.Hour
	cfg.RetryMin, cfg.RetryMax, cfg.SendTimeout = 20*time.Millisecond, 100*time.Millisecond, 3*time.Second
	mustReload(t, svc.Service, cfg)

	// The episode goes on after the reload and ends: no mail through either relay.
	p.Sample(events.LoadSample{Active: 10, Waiting: 4, Stress: true, Episode: ep, PeakDemand: 14})
	p.Sample(events.LoadSample{Active: 10, Waiting: 1, Stress: true, Episode: ep, PeakDemand: 14})
	exit(p, ep, entered)
	stillSink(t, after, 0, 1500*time.Millisecond)
	stillSink(t, before, 1, 0)

	// The entry before the reload still counts for the week: the next one is the node's second
	// and brings the advisory as well, both through the new relay.
	ep2, _ := enter(p, c, "edge-1")
	got := waitSink(t, after, 2)
	var subjects []string
	for _, m := range got {
		h := header(t, m)
		subjects = append(subjects, h.Get("Subject"))
		if k := h.Get("X-Mtastress-Kind"); k == KindStress && h.Get("X-Mtastress-Key") != ep2 {
			t.Errorf("stress alert of %s after the reload, want only episode %s", h.Get("X-Mtastress-Key"), ep2)
		}
	}
	// "Frequent MTA Stress:" contains "MTA Stress:": match the prefix.
	for _, prefix := range []string{"MTA Stress:", "Frequent MTA Stress:"} {
		if !slices.ContainsFunc(subjects, func(s string) bool { return strings.HasPrefix(s, prefix) }) {
			t.Errorf("no subject starting %q among %v", prefix, subjects)
		}
	}
	stillSink(t, after, 2, 2*quiet+500*time.Millisecond)
	stillSink(t, before, 1, 0)
	if n := len(svc.Sent()); n != 3 {
		t.Errorf("Sent() has %d alerts, want 3", n)
	}
}

func TestReloadSendsAnAlertWaitingInTheOutboxOnceThroughTheNewRelay(t *testing.T) {
	c := cluster("reload-outbox")
	_, js := startNATS(t)
	var refused atomic.Int32
	broken := startSink(t, testenv.SinkOptions{TempFail: func(string, []string) bool {
		refused.Add(1)
		return true
	}})
	fixed := startSink(t, testenv.SinkOptions{})
	svc := startService(t, js, broken.Addr(), nil)

	ep, _ := enter(publisher(t, js, c, "edge-1"), c, "edge-1")
	deadline := time.Now().Add(10 * time.Second)
	for refused.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the broken relay refused %d attempts, want 2 before the reload", refused.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	cfg := svc.Config()
	cfg.Relay, cfg.Admin = fixed.Addr(), []string{"oncall@example.test"}
	mustReload(t, svc.Service, cfg)

	m := waitSink(t, fixed, 1)[0]
	if got := header(t, m).Get("X-Mtastress-Key"); got != ep || !cmp.Equal(m.To, cfg.Admin) {
		t.Errorf("the new relay got %s to %v, want episode %s to %v", got, m.To, ep, cfg.Admin)
	}
	stillSink(t, fixed, 1, time.Second)
	stillSink(t, broken, 0, 0)
	if sent := svc.Sent(); len(sent) != 1 || sent[0].Attempts < 3 {
		t.Errorf("Sent() = %+v, want the one alert after at least 3 attempts", sent)
	}
}

func TestReloadLetsADeliveryInProgressFinishWithItsMailer(t *testing.T) {
	c := cluster("reload-inflight")
	_, js := startNATS(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	// The old relay holds its reply to the first message's data until the test releases it.
	slow := startSink(t, testenv.SinkOptions{TempFail: func(string, []string) bool {
		once.Do(func() {
			close(arrived)
			<-release
		})
		return false
	}})
	next := startSink(t, testenv.SinkOptions{})
	svc := startService(t, js, slow.Addr(), nil)

	ep, _ := enter(publisher(t, js, c, "edge-1"), c, "edge-1")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reached the old relay")
	}
	cfg := svc.Config()
	cfg.Relay, cfg.Admin = next.Addr(), []string{"oncall@example.test"}
	mustReload(t, svc.Service, cfg)
	close(release)

	// The old relay's 250 counts: the alert is recorded as sent, not sent again by the new one.
	m := waitSink(t, slow, 1)[0]
	if got := header(t, m).Get("X-Mtastress-Key"); got != ep || !cmp.Equal(m.To, []string{"ops@example.test"}) {
		t.Errorf("the old relay got %s to %v", got, m.To)
	}
	ep2, _ := enter(publisher(t, js, c, "edge-2"), c, "edge-2")
	if got := header(t, waitSink(t, next, 1)[0]).Get("X-Mtastress-Key"); got != ep2 {
		t.Errorf("the new relay got %s, want only episode %s", got, ep2)
	}
	stillSink(t, next, 1, time.Second)
	stillSink(t, slow, 1, 0)
}

func TestReloadRejectsAnInvalidConfigAndChangesNothing(t *testing.T) {
	c := cluster("reload-invalid")
	_, js := startNATS(t)
	running, unused := startSink(t, testenv.SinkOptions{}), startSink(t, testenv.SinkOptions{})
	svc := startService(t, js, running.Addr(), nil)
	was := svc.live()

	// Each bad config also carries good changes, which must not be applied either.
	cases := []struct {
		name  string
		spoil func(*Config)
	}{
		{"without JetStream", func(c *Config) { c.JS = nil }},
		{"without an admin address", func(c *Config) { c.Admin = nil }},
		{"without a sender", func(c *Config) { c.From = "" }},
		{"without a relay", func(c *Config) { c.Relay, c.Admin = "", []string{"oncall@example.test"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := svc.Config()
			cfg.Relay, cfg.From, cfg.Durable = unused.Addr(), "alerts@example.test", "other"
			cfg.SettleWindow = time.Hour
			tc.spoil(&cfg)
			restart, err := svc.Reload(cfg)
			_, newErr := New(cfg)
			if !errors.Is(err, ErrConfig) || newErr == nil || err.Error() != newErr.Error() {
				t.Errorf("Reload: %v; want New's error %v", err, newErr)
			}
			if restart != nil {
				t.Errorf("restart %v with an error", restart)
			}
			if svc.live() != was {
				t.Errorf("the settings in force changed: %+v", svc.live().cfg)
			}
		})
	}

	enter(publisher(t, js, c, "edge-1"), c, "edge-1")
	if m := waitSink(t, running, 1)[0]; m.From != "mtastress@example.test" ||
		!cmp.Equal(m.To, []string{"ops@example.test"}) {
		t.Errorf("after the failed reloads: from %s to %v", m.From, m.To)
	}
	stillSink(t, unused, 0, 500*time.Millisecond)
}

func TestReloadReportsWhatNeedsARestart(t *testing.T) {
	_, js := startNATS(t)
	_, otherJS := startNATS(t)
	var logs bytes.Buffer // Reload logs on the caller's goroutine, and nothing runs here
	base := Config{JS: js, Admin: []string{"ops@example.test"}, From: "mtastress@example.test",
		Relay: "127.0.0.1:2525", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	bigger := scenarios.DefaultCatalog().WithOverrides(map[string]int{"T10": 12})

	cases := []struct {
		name    string
		change  func(*Config)
		restart []string
		applied string // the applied keys as logged
	}{
		{"nothing changed, defaults left out", func(*Config) {}, nil, "[]"},
		{"the defaults written out, a fresh default catalog", func(c *Config) {
			c.Durable, c.Bucket, c.Replicas, c.AckWait = DefaultDurable, DefaultBucket, 1, DefaultAckWait
			c.Tick, c.Catalog = DefaultTick, scenarios.DefaultCatalog()
		}, nil, "[]"},
		{"another durable", func(c *Config) { c.Durable = "other" }, []string{"durable"}, "[]"},
		{"another bucket", func(c *Config) { c.Bucket = "other" }, []string{"bucket"}, "[]"},
		{"more replicas", func(c *Config) { c.Replicas = 3 }, []string{"replicas"}, "[]"},
		{"another ack wait", func(c *Config) { c.AckWait = time.Minute }, []string{"ack_wait"}, "[]"},
		{"a replica name given", func(c *Config) { c.Replica = "b" }, []string{"replica"}, "[]"},
		{"another catalog", func(c *Config) { c.Catalog = bigger }, []string{"models"}, "[]"},
		{"another tick", func(c *Config) { c.Tick = time.Minute }, []string{"Tick"}, "[]"},
		{"another connection", func(c *Config) { c.JS = otherJS }, []string{"nats"}, "[]"},
		{"both kinds at once", func(c *Config) {
			c.Durable, c.Bucket, c.Relay, c.SettleWindow = "other", "other", "127.0.0.1:2526", -1
		}, []string{"durable", "bucket"}, `"[relay settle_window]"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			svc, err := New(base)
			if err != nil {
				t.Fatal(err)
			}
			cfg := base
			tc.change(&cfg)
			// Twice: a change that needs a restart is named until there is one.
			for range 2 {
				restart, err := svc.Reload(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.restart, restart); diff != "" {
					t.Errorf("restart (-want +got):\n%s", diff)
				}
			}
			if want := "applied=" + tc.applied; !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %s:\n%s", want, logs.String())
			}
			// What needs a restart stays as it runs; the rest is in force.
			got, start := svc.live().cfg, svc.Config()
			if got.JS != js || got.Durable != start.Durable || got.Bucket != start.Bucket ||
				got.Replicas != start.Replicas || got.AckWait != start.AckWait ||
				got.Replica != start.Replica || got.Tick != start.Tick || got.Catalog != start.Catalog {
				t.Errorf("restart-only settings changed: %+v", got)
			}
			if got.Relay != cfg.Relay || got.SettleWindow != cmpOr(cfg.SettleWindow, DefaultSettle) {
				t.Errorf("relay %s, settle %v in force; want %s, %v", got.Relay, got.SettleWindow,
					cfg.Relay, cfg.SettleWindow)
			}
			if svc.live().mailer.Relay != cfg.Relay {
				t.Errorf("the mailer sends to %s, want %s", svc.live().mailer.Relay, cfg.Relay)
			}
		})
	}

	t.Run("a given replica name left out needs a restart, given back does not", func(t *testing.T) {
		named := base
		named.Replica = "a"
		svc, err := New(named)
		if err != nil {
			t.Fatal(err)
		}
		if restart, _ := svc.Reload(base); !cmp.Equal(restart, []string{"replica"}) {
			t.Errorf("without the name: restart %v, want [replica]", restart)
		}
		if restart, _ := svc.Reload(named); restart != nil {
			t.Errorf("with the name: restart %v, want none", restart)
		}
		if got := svc.live().cfg.Replica; got != "a" {
			t.Errorf("replica %q in force, want a", got)
		}
	})
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// TestReloadWhileAlertsFlow reloads over and over while entries are applied and alerts sent.
// Each alert is sent once, and with one config's sender and recipients, never a mix; under
// -race it also shows that no read of a reloaded setting races the swap.
func TestReloadWhileAlertsFlow(t *testing.T) {
	c := cluster("reload-busy")
	_, js := startNATS(t)
	relay := startSink(t, testenv.SinkOptions{})
	svc := startService(t, js, relay.Addr(), nil)
	a, b := svc.Config(), svc.Config()
	a.From, a.Admin, a.Rosters = "a@example.test", []string{"x@example.test", "y@example.test"}, nil
	b.From, b.Admin, b.Rosters = "b@example.test", []string{"z@example.test"}, map[string][]string{c: {"edge-0"}}
	b.SettleWindow, b.RetryMin = 2*quiet, 20*time.Millisecond

	done := make(chan struct{})
	reloaded := make(chan int)
	go func() {
		n := 0
		defer func() { reloaded <- n }()
		for {
			for _, cfg := range []Config{a, b} {
				select {
				case <-done:
					return
				case <-time.After(2 * time.Millisecond):
				}
				if _, err := svc.Reload(cfg); err != nil {
					t.Error(err)
					return
				}
				n++
			}
		}
	}()

	const nodes = 8
	var eps []string
	for i := range nodes {
		node := fmt.Sprintf("edge-%d", i)
		ep, _ := enter(publisher(t, js, c, node), c, node)
		eps = append(eps, ep)
		time.Sleep(20 * time.Millisecond)
	}
	got := waitSink(t, relay, nodes)
	close(done)
	if n := <-reloaded; n < 10 {
		t.Errorf("only %d reloads during the run", n)
	}
	stillSink(t, relay, nodes, 500*time.Millisecond)

	for _, m := range got {
		h := header(t, m)
		var want Config
		switch m.From {
		case a.From:
			want = a
		case b.From:
			want = b
		default:
			t.Errorf("sender %s is neither config's", m.From)
			continue
		}
		if !cmp.Equal(m.To, want.Admin) || h.Get("From") != m.From || h.Get("To") != strings.Join(want.Admin, ", ") {
			t.Errorf("from %s (header %s) to %v (header %s): a mix of two configs",
				m.From, h.Get("From"), m.To, h.Get("To"))
		}
	}
	counts := relay.CountByHeader("X-Mtastress-Key")
	for _, ep := range eps {
		if counts[ep] != 1 {
			t.Errorf("episode %s sent %d times, want once", ep, counts[ep])
		}
	}
}
