package mta

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	newLimiter := func(r RateLimits) (*rateLimiter, *time.Time) {
		rl := newRateLimiter(r, slog.New(slog.DiscardHandler))
		now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		rl.now = func() time.Time { return now }
		return rl, &now
	}

	t.Run("a client gets its minute's allowance at once, then one more per 60/n seconds", func(t *testing.T) {
		rl, now := newLimiter(RateLimits{MessagesPerMinute: 3})
		for i := range 3 {
			if !rl.allow(rateMessages, a) {
				t.Fatalf("message %d refused", i+1)
			}
		}
		if rl.allow(rateMessages, a) {
			t.Fatal("a fourth message within the minute was allowed")
		}
		if !rl.allow(rateMessages, b) {
			t.Fatal("another client was refused: limits are per address")
		}
		*now = now.Add(20 * time.Second)
		if !rl.allow(rateMessages, a) || rl.allow(rateMessages, a) {
			t.Fatal("after 20 s exactly one more message should be allowed")
		}
		if got := rl.peak(rateMessages); got != 6 {
			t.Fatalf("peak %d, want 6 attempts by one client in one minute", got)
		}
	})

	t.Run("exempt networks and unset kinds are never limited", func(t *testing.T) {
		rl, _ := newLimiter(RateLimits{ConnectionsPerMinute: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/31")}})
		for range 5 {
			if !rl.allow(rateConnections, a) || !rl.allow(rateRecipients, b) {
				t.Fatal("refused an exempt client or an unlimited kind")
			}
		}
		c := netip.MustParseAddr("192.0.2.9")
		if !rl.allow(rateConnections, c) || rl.allow(rateConnections, c) {
			t.Fatal("a client outside the exempt network is not limited")
		}
	})

	t.Run("clients idle for a minute are swept", func(t *testing.T) {
		rl, now := newLimiter(RateLimits{RecipientsPerMinute: 10})
		rl.allow(rateRecipients, a)
		*now = now.Add(2 * time.Minute)
		rl.allow(rateRecipients, b)
		if _, ok := rl.clients[a]; ok || len(rl.clients) != 1 {
			t.Fatalf("clients after the sweep: %v", rl.clients)
		}
	})
}

func TestRateLimitReplies(t *testing.T) {
	limited := netip.MustParseAddr("127.0.0.1")
	exempt := netip.MustParseAddr("127.0.0.2")
	start := func(t *testing.T, r RateLimits) (*Server, string) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit = 10
		r.Exempt = []netip.Prefix{netip.PrefixFrom(exempt, 32)}
		cfg.RateLimits = r
		return startServer(t, cfg)
	}
	greetFrom := func(t *testing.T, addr string, from netip.Addr) *rawClient {
		c := dialRawFrom(t, addr, from)
		expect(t, "greeting", c.reply(5*time.Second), "220 ")
		expect(t, "EHLO", c.cmd("EHLO client.test"), "250 ")
		return c
	}

	t.Run("connections over the limit get 421 4.7.0, exempt ones do not", func(t *testing.T) {
		s, addr := start(t, RateLimits{ConnectionsPerMinute: 2})
		greetFrom(t, addr, limited)
		greetFrom(t, addr, limited)
		expect(t, "third connection", dialRawFrom(t, addr, limited).reply(5*time.Second), "421 4.7.0 ")
		for range 3 {
			greetFrom(t, addr, exempt)
		}
		if n := metricValue(t, s, "mtastress_mta_rate_limited_total", "kind", "connections"); n != 1 {
			t.Fatalf("rate_limited_total{kind=connections} %v, want 1", n)
		}
		if n := metricValue(t, s, "mtastress_mta_client_rate_peak", "kind", "connections"); n != 3 {
			t.Fatalf("client_rate_peak{kind=connections} %v, want 3", n)
		}
	})

	t.Run("messages over the limit get 450 4.7.1 at MAIL", func(t *testing.T) {
		_, addr := start(t, RateLimits{MessagesPerMinute: 1})
		c := greetFrom(t, addr, limited)
		expect(t, "first MAIL", c.cmd("MAIL FROM:<a@example.net>"), "250 ")
		expect(t, "RSET", c.cmd("RSET"), "250 ")
		expect(t, "second MAIL", c.cmd("MAIL FROM:<a@example.net>"), "450 4.7.1 ")
		expect(t, "exempt MAIL", greetFrom(t, addr, exempt).cmd("MAIL FROM:<a@example.net>"), "250 ")
	})

	t.Run("recipients over the limit get 450 4.7.1, refused ones counted too", func(t *testing.T) {
		s, addr := start(t, RateLimits{RecipientsPerMinute: 2})
		c := greetFrom(t, addr, limited)
		expect(t, "MAIL", c.cmd("MAIL FROM:<a@example.net>"), "250 ")
		expect(t, "a refused recipient", c.cmd("RCPT TO:<x@elsewhere.example>"), "554 5.7.1 ")
		expect(t, "second RCPT", c.cmd("RCPT TO:<user1@example.test>"), "250 ")
		expect(t, "third RCPT", c.cmd("RCPT TO:<user2@example.test>"), "450 4.7.1 ")

		// A reload raises the limit: the next recipient passes.
		cfg := s.cfg
		cfg.RateLimits.RecipientsPerMinute = 10
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		expect(t, "after the reload", c.cmd("RCPT TO:<user2@example.test>"), "250 ")
	})
}
