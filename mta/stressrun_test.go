package mta

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mtastress/mtastress/events"
)

func TestStressEvents(t *testing.T) {
	t.Run("entry and exit reach the event sink with the episode id and peak demand", func(t *testing.T) {
		t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		clock := &fakeClock{t: t0}
		rec := &recorder{}
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.Clock, cfg.Events = 2, clock, rec
		// The cool-down is run out by hand on the fake clock; its real timer never fires in time.
		cfg.Cooldown = time.Minute
		s, addr := startServer(t, cfg)

		c1, c2 := greeted(t, addr), greeted(t, addr)
		eventually(t, 2*time.Second, "the entry event", func() bool { n, _ := rec.counts(); return n == 1 })
		id := events.EpisodeID("edge", "edge-1", t0)
		if got := rec.entered[0]; got.Episode != id || !got.Entered.Equal(t0) || got.PeakDemand != 2 {
			t.Fatalf("entered %+v, want episode %s at %v with peak demand 2", got, id, t0)
		}
		c3 := dialRaw(t, addr)
		eventually(t, 2*time.Second, "a waiter", func() bool { return s.Snapshot().Waiting == 1 })

		// A slot passed to a waiter never frees: still the same episode.
		c1.cmd("QUIT")
		expect(t, "waiter greeting", c3.reply(2*time.Second), "220 ")
		clock.Add(time.Second)
		c2.cmd("QUIT")
		c3.cmd("QUIT")
		eventually(t, 2*time.Second, "all sessions to end", func() bool { return s.Snapshot().Active == 0 })
		if snap := s.Snapshot(); !snap.InStress || snap.Episode != id {
			t.Fatalf("in the cool-down: %+v, want still in episode %s", snap, id)
		}

		clock.Add(cfg.Cooldown)
		s.pool.stress.tick()
		_, exits := rec.counts()
		if exits != 1 {
			t.Fatalf("%d exit events, want 1", exits)
		}
		wantExit := t0.Add(time.Second + cfg.Cooldown)
		if got := rec.exited[0]; got.Episode != id || got.Exited == nil || !got.Exited.Equal(wantExit) || got.PeakDemand != 3 {
			t.Fatalf("exited %+v, want episode %s exited at %v with peak demand 3", got, id, wantExit)
		}
		snap := s.Snapshot()
		if snap.InStress || len(snap.Episodes) != 1 || snap.Episodes[0].Exited == nil || snap.PeakDemand != 3 {
			t.Fatalf("snapshot after exit %+v", snap)
		}
	})

	t.Run("load samples carry the stress state and the episode", func(t *testing.T) {
		rec := &recorder{}
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.Events, cfg.Cooldown = 1, rec, time.Minute
		_, addr := startServer(t, cfg)
		greeted(t, addr)
		eventually(t, 2*time.Second, "a sample in stress", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, s := range rec.samples {
				if s.Stress && s.Active == 1 && s.Limit == 1 && s.Episode != "" && s.Node.Node == "edge-1" {
					return true
				}
			}
			return false
		})
	})

	t.Run("a restart in stress continues the episode and ends it after the cool-down", func(t *testing.T) {
		rec := &recorder{}
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.Events, cfg.Cooldown = 1, rec, 300*time.Millisecond
		s1, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		go s1.Serve(l)
		greeted(t, l.Addr().String())
		eventually(t, 2*time.Second, "the entry", func() bool { n, _ := rec.counts(); return n == 1 })
		id := rec.entered[0].Episode
		s1.Close() // as abrupt as it gets in-process: the episode record stays

		rec2 := &recorder{}
		cfg.Events = rec2
		s2, _ := startServer(t, cfg)
		if snap := s2.Snapshot(); !snap.InStress || snap.Episode != id {
			t.Fatalf("after restart %+v, want in stress in episode %s", snap, id)
		}
		eventually(t, 3*time.Second, "the exit", func() bool { _, n := rec2.counts(); return n == 1 })
		if n, _ := rec2.counts(); n != 0 || rec2.exited[0].Episode != id {
			t.Fatalf("after restart: %d entries, exit %+v; want no entry and the exit of %s", n, rec2.exited[0], id)
		}
	})
}

func TestStressSettings(t *testing.T) {
	// With a limit of 1, the first session takes the last slot (it started before stress);
	// the second waits and starts in stress.
	start := func(t *testing.T) (*Server, *rawClient, *rawClient) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.Cooldown = 1, time.Minute
		cfg.CommandTimeout, cfg.StressCommandTimeout = 5*time.Second, 300*time.Millisecond
		s, addr := startServer(t, cfg)
		normal := greeted(t, addr)
		c2 := dialRaw(t, addr)
		eventually(t, 2*time.Second, "a waiter", func() bool { return s.Snapshot().Waiting == 1 })
		return s, normal, c2
	}

	t.Run("a session that starts in stress is cut off when idle, one that began before is not", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1")
		cfg.Limit, cfg.Cooldown = 2, time.Minute
		cfg.CommandTimeout, cfg.StressCommandTimeout = 5*time.Second, 300*time.Millisecond
		s, addr := startServer(t, cfg)
		normal, last := greeted(t, addr), greeted(t, addr)
		stressed := dialRaw(t, addr)
		eventually(t, 2*time.Second, "a waiter", func() bool { return s.Snapshot().Waiting == 1 })
		last.cmd("QUIT")
		expect(t, "stressed greeting", stressed.reply(2*time.Second), "220 ")
		eventually(t, 2*time.Second, "stress percent 50", func() bool { return s.Snapshot().StressPercent == 50 })
		expect(t, "stressed session after idling", stressed.reply(2*time.Second), "421 4.4.2 ")
		// The normal session has idled longer than that, and is still served.
		expect(t, "normal session after idling", normal.cmd("NOOP"), "250 ")
	})

	t.Run("a session in stress is closed at its second junk command", func(t *testing.T) {
		_, normal, c2 := start(t)
		for i := 0; i < 5; i++ {
			expect(t, "NOOP in normal mode", normal.cmd("NOOP"), "250 ")
		}
		normal.cmd("QUIT")
		expect(t, "stressed greeting", c2.reply(2*time.Second), "220 ")
		expect(t, "EHLO", c2.cmd("EHLO client.test"), "250 ")
		expect(t, "junk over the limit", c2.cmd("NOOP"), "421 4.7.0 ")
	})

	t.Run("a session in stress is closed at its first error", func(t *testing.T) {
		_, normal, c2 := start(t)
		expect(t, "unknown command in normal mode", normal.cmd("XYZW"), "500 ")
		expect(t, "and the session goes on", normal.cmd("MAIL FROM:<a@example.net>"), "250 ")
		normal.cmd("QUIT")
		expect(t, "stressed greeting", c2.reply(2*time.Second), "220 ")
		expect(t, "EHLO", c2.cmd("EHLO client.test"), "250 ")
		expect(t, "relay denied", c2.cmd("MAIL FROM:<a@example.net>"), "250 ")
		expect(t, "relay denied", c2.cmd("RCPT TO:<x@elsewhere.example>"), "554 5.7.1 ")
		expect(t, "then the 421", c2.reply(2*time.Second), "421 4.7.0 ")
	})
}

func TestTrickledDataIsCutOff(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.CommandTimeout, cfg.MinDataRate = 600*time.Millisecond, 500
	_, addr := startServer(t, cfg)
	c := greeted(t, addr)
	expect(t, "MAIL", c.cmd("MAIL FROM:<a@example.net>"), "250 ")
	expect(t, "RCPT", c.cmd("RCPT TO:<user1@example.test>"), "250 ")
	expect(t, "DATA", c.cmd("DATA"), "354 ")

	// One byte each 100 ms keeps the idle timeout happy but not the minimum data rate. The
	// bytes spell a command: it must never be run.
	got := make(chan string, 1)
	go func() { got <- c.reply(5 * time.Second) }()
	for _, b := range []byte("RSET\r\nQUIT\r\nRSET\r\nQUIT\r\n") {
		if _, err := c.conn.Write([]byte{b}); err != nil {
			break
		}
		select {
		case r := <-got:
			expect(t, "reply to trickled data", r, "421 4.4.2 ")
			if r := c.reply(time.Second); r != "" {
				t.Fatalf("after the 421 got %q: body bytes were read as commands", r)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("the trickling client was not cut off: %q", <-got)
}

func TestShutdown(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	idle := greeted(t, l.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	expect(t, "idle session at shutdown", idle.reply(time.Second), "421 4.3.2 ")
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
	if err := s.Shutdown(ctx); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("second Shutdown: %v, want ErrServerClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Close after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestShutdownLetsTransactionsFinish(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	busy := greeted(t, l.Addr().String())
	stuck := greeted(t, l.Addr().String())
	expect(t, "MAIL", busy.cmd("MAIL FROM:<sender@example.net>"), "250 ")
	expect(t, "RCPT", busy.cmd("RCPT TO:<user1@example.test>"), "250 ")
	expect(t, "MAIL", stuck.cmd("MAIL FROM:<sender@example.net>"), "250 ")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	eventually(t, time.Second, "draining", func() bool { return s.draining.Load() })
	expect(t, "DATA during shutdown", busy.cmd("DATA"), "354 ")
	busy.conn.Write([]byte(message("sd-1")))
	expect(t, "the message is still accepted", busy.cmd("."), "250 ")
	expect(t, "then the session is ended", busy.reply(time.Second), "421 4.3.2 ")

	// The other one never finishes: at the deadline it is told so.
	expect(t, "a transaction past the deadline", stuck.reply(3*time.Second), "421 4.3.2 ")
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
}

func TestBDATTimeoutClosesTheConnection(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.CommandTimeout = 500 * time.Millisecond
	_, addr := startServer(t, cfg)
	c := greeted(t, addr)
	expect(t, "MAIL", c.cmd("MAIL FROM:<a@example.net>"), "250 ")
	expect(t, "RCPT", c.cmd("RCPT TO:<user1@example.test>"), "250 ")
	// A chunk announced longer than what is sent, and the bytes sent look like commands.
	c.send("BDAT 100 LAST\r\nRSET\r\nNOOP")
	expect(t, "after the chunk stalls", c.reply(3*time.Second), "421 4.4.2 ")
	if r := c.reply(time.Second); r != "" {
		t.Fatalf("after the 421 got %q: chunk bytes were read as commands", r)
	}
}
