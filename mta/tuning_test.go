package mta

import (
	"strings"
	"testing"
	"time"
)

// TestReloadSessionLimits checks that a reload's session limits reach the sessions and waits
// that begin after it, and leave those that began before with theirs.
func TestReloadSessionLimits(t *testing.T) {
	t.Run("a session after the reload has the new command timeout; one before keeps its own", func(t *testing.T) {
		sink := startSink(t)
		cfg := testConfig(t, sink.Addr())
		cfg.CommandTimeout = 10 * time.Second
		s, addr := startServer(t, cfg)
		before := greeted(t, addr)
		cfg.CommandTimeout = 300 * time.Millisecond
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		after := greeted(t, addr)
		start := time.Now()
		expect(t, "idle after the reload", after.reply(5*time.Second), "421 4.4.")
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("timed out after %v, want about 300ms", d)
		}
		// The older session is still served, past the new timeout.
		expect(t, "NOOP of the session from before", before.cmd("NOOP"), "250 ")
	})

	t.Run("the junk limit of a reload holds in the next session", func(t *testing.T) {
		sink := startSink(t)
		cfg := testConfig(t, sink.Addr())
		s, addr := startServer(t, cfg)
		cfg.JunkLimit, cfg.HardErrorLimit = 1, 1
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		res := attackOnce(t, addr, nil, []byte(atkHello), 0, time.Second)
		res2 := attackOnce(t, addr, []byte(atkHello), []byte("NOOP\r\n"), 1, time.Second)
		checkReplies(t, res.replies, atkGreeted)
		checkReplies(t, res2.replies, replies(atkGreeted, []string{"421 4.7.0 "}))
	})

	t.Run("a shorter slot wait and a smaller waiting line apply to the next waiters", func(t *testing.T) {
		sink := startSink(t)
		cfg := testConfig(t, sink.Addr())
		cfg.Limit, cfg.SlotWait, cfg.WaitMax, cfg.ClientCap = 1, 30*time.Second, 4, 10
		s, addr := startServer(t, cfg)
		holder := greeted(t, addr)
		defer holder.conn.Close()
		cfg.SlotWait, cfg.WaitMax = 200*time.Millisecond, 1
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		waiter := dialRaw(t, addr)
		eventually(t, 5*time.Second, "one waiting", func() bool { return s.Snapshot().Waiting == 1 })
		// The line holds one now: the next is answered at once.
		expect(t, "over the new waiting line", dialRaw(t, addr).reply(5*time.Second), "421 4.3.2 ")
		start := time.Now()
		expect(t, "the waiter", waiter.reply(5*time.Second), "421 4.3.2 ")
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("the wait ended after %v, want about 200ms", d)
		}
	})

	t.Run("a reload that fails validation changes nothing", func(t *testing.T) {
		sink := startSink(t)
		cfg := testConfig(t, sink.Addr())
		s, addr := startServer(t, cfg)
		bad := cfg
		bad.CommandTimeout, bad.SlotWait = 300*time.Millisecond, -1
		if err := s.Reload(bad); err == nil || !strings.Contains(err.Error(), "slot") {
			t.Fatalf("Reload of a negative slot wait: %v", err)
		}
		c := greeted(t, addr)
		time.Sleep(600 * time.Millisecond) // past the timeout that was refused
		expect(t, "NOOP", c.cmd("NOOP"), "250 ")
	})
}

// TestHopcountLimit checks the configured loop limit, and that a reload changes it for the next
// message: a message with as many Received headers as the limit passes, one more is a loop.
func TestHopcountLimit(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.HopcountLimit = 3
	s, addr := startServer(t, cfg)
	withHops := func(n int) string {
		return strings.Repeat("Received: from hop.example\r\n", n) + "Subject: hops\r\n\r\nbody\r\n"
	}
	c := greeted(t, addr)
	expect(t, "three hops", c.sendMessage("a@example.net", []string{"user1@example.test"}, withHops(3)), "250 ")
	expect(t, "four hops", c.sendMessage("a@example.net", []string{"user1@example.test"}, withHops(4)), "554 5.4.6 ")
	cfg.HopcountLimit = 4
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	expect(t, "four hops after the reload", c.sendMessage("a@example.net", []string{"user1@example.test"}, withHops(4)), "250 ")
	if n := s.Snapshot().MessagesAccepted; n != 2 {
		t.Fatalf("%d messages queued, want 2", n)
	}
}
