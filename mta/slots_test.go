package mta

import (
	"net/netip"
	"testing"
	"time"
)

func TestSlotListener(t *testing.T) {
	t.Run("a client over the limit waits with its greeting held and is greeted when a slot frees", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit = 2
		s, addr := startServer(t, cfg)
		c1, _ := greeted(t, addr), greeted(t, addr)

		c3 := dialRaw(t, addr)
		eventually(t, 2*time.Second, "the third client to wait", func() bool { return s.Snapshot().Waiting == 1 })
		if got := c3.reply(200 * time.Millisecond); got != "" {
			t.Fatalf("waiting client got %q before a slot was free", got)
		}
		expect(t, "QUIT", c1.cmd("QUIT"), "221 ")
		expect(t, "greeting after a slot freed", c3.reply(2*time.Second), "220 ")
		if snap := s.Snapshot(); snap.Active != 2 || snap.Waiting != 0 || snap.SessionsServed != 3 {
			t.Fatalf("snapshot %+v, want 2 active, 0 waiting, 3 served", snap)
		}
	})

	t.Run("a client that waits past the slot wait gets 421 4.3.2", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.SlotWait = 1, 300*time.Millisecond
		s, addr := startServer(t, cfg)
		greeted(t, addr)
		c2 := dialRaw(t, addr)
		expect(t, "after the slot wait", c2.reply(3*time.Second), "421 4.3.2 mx.example.test all slots busy")
		if got := c2.reply(time.Second); got != "" {
			t.Fatalf("after the 421 got %q, want the connection closed", got)
		}
		if snap := s.Snapshot(); snap.SessionsTempfailed != 1 || snap.Waiting != 0 {
			t.Fatalf("snapshot %+v, want 1 tempfailed, 0 waiting", snap)
		}
	})

	t.Run("past wait max a client gets 421 4.3.2 at once", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.WaitMax, cfg.SlotWait = 1, 1, 10*time.Second
		s, addr := startServer(t, cfg)
		greeted(t, addr)
		dialRaw(t, addr)
		eventually(t, 2*time.Second, "one waiter", func() bool { return s.Snapshot().Waiting == 1 })
		start := time.Now()
		c3 := dialRaw(t, addr)
		expect(t, "over wait max", c3.reply(3*time.Second), "421 4.3.2 ")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("the 421 took %v, want it at once", d)
		}
	})

	t.Run("the per-client cap answers 421 4.7.0 and spares other clients", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.ClientCap = 4, 2
		_, addr := startServer(t, cfg)
		a, b := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
		for i := 0; i < 2; i++ {
			expect(t, "within the cap", dialRawFrom(t, addr, a).reply(2*time.Second), "220 ")
		}
		expect(t, "over the cap", dialRawFrom(t, addr, a).reply(2*time.Second), "421 4.7.0 ")
		expect(t, "another client", dialRawFrom(t, addr, b).reply(2*time.Second), "220 ")
	})

	t.Run("an exempt listener holds no slot", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit = 1
		s, addr := startServer(t, cfg)
		exempt := serveExempt(t, s)
		greeted(t, addr)
		c := greeted(t, exempt)
		expect(t, "NOOP on the exempt listener", c.cmd("NOOP"), "250 ")
		if snap := s.Snapshot(); snap.Active != 1 {
			t.Fatalf("active %d, want 1: exempt sessions hold no slot", snap.Active)
		}
	})
}
