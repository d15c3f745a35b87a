package mta

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtastress/mtastress/testenv"
)

// queueIDs lists the ids in q, failing the test on an error.
func queueIDs(t *testing.T, q QueueControl) map[string]QueueEntry {
	t.Helper()
	entries, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]QueueEntry{}
	for _, e := range entries {
		out[e.ID] = e
	}
	return out
}

func openQueue(t *testing.T, dir string, live bool) QueueControl {
	t.Helper()
	q, err := OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if q.Live() != live {
		t.Fatalf("OpenQueue live = %v, want %v", q.Live(), live)
	}
	return q
}

func TestQueueTools(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	sink, err := testenv.StartSink(testenv.SinkOptions{TempFail: func(string, []string) bool { return refuse.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Stop)
	cfg := testConfig(t, sink.Addr())
	cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour // only a flush retries within the test
	s, addr := startServerNoCleanup(t, cfg)

	// Three messages, deferred by the hop's 451.
	c := greeted(t, addr)
	for i := range 3 {
		expect(t, "message", c.sendMessage("a@example.net", []string{"user1@example.test"}, message(fmt.Sprint("q", i))), "250 ")
	}
	q := openQueue(t, cfg.SpoolDir, true)
	var ids []string
	eventually(t, 10*time.Second, "three deferred messages", func() bool {
		m := queueIDs(t, q)
		ids = ids[:0]
		for id, e := range m {
			if e.Attempts == 0 || e.LastError == "" || e.NextTry.IsZero() {
				return false
			}
			ids = append(ids, id)
		}
		return len(ids) == 3
	})
	keep, drop, held := ids[0], ids[1], ids[2]

	t.Run("delete removes a message from a running node", func(t *testing.T) {
		if err := q.Delete(drop); err != nil {
			t.Fatal(err)
		}
		if _, ok := queueIDs(t, q)[drop]; ok {
			t.Fatal("deleted message still listed")
		}
		if err := q.Delete(drop); !errors.Is(err, ErrNoSuchMessage) {
			t.Fatalf("second delete: %v, want ErrNoSuchMessage", err)
		}
	})

	t.Run("hold keeps a message back through a flush", func(t *testing.T) {
		if err := q.Hold(held); err != nil {
			t.Fatal(err)
		}
		if !queueIDs(t, q)[held].Held {
			t.Fatal("not listed as held")
		}
	})

	t.Run("flush retries at once", func(t *testing.T) {
		refuse.Store(false)
		if _, err := q.Flush(""); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the flushed message", func() bool { return len(sink.Messages()) == 1 })
		// The sink holds the message once it has replied 250 to the DATA; the
		// MTA removes it from its queue only after reading that reply, a moment
		// later, so wait for the listing rather than look once.
		eventually(t, 10*time.Second, "the delivered message gone from the queue", func() bool {
			_, ok := queueIDs(t, q)[keep]
			return !ok
		})
	})

	// Stop the node: the tools now work on the spool itself.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(ctx)
	off := openQueue(t, cfg.SpoolDir, false)

	t.Run("a stopped node's queue lists the held message", func(t *testing.T) {
		m := queueIDs(t, off)
		if len(m) != 1 || !m[held].Held {
			t.Fatalf("stopped queue %+v, want only %s, held", m, held)
		}
		if err := off.Hold(drop); !errors.Is(err, ErrNoSuchMessage) {
			t.Fatalf("hold of a deleted message: %v", err)
		}
	})
	off.Close()

	t.Run("a held message stays held across a restart until released", func(t *testing.T) {
		s2, _ := startServerNoCleanup(t, cfg)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s2.Shutdown(ctx)
		}()
		time.Sleep(200 * time.Millisecond) // a held message would be tried at once; give it the chance
		if n := len(sink.Messages()); n != 1 {
			t.Fatalf("%d messages delivered while one was held", n)
		}
		q2 := openQueue(t, cfg.SpoolDir, true)
		if err := q2.Release(held); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the released message", func() bool { return len(sink.Messages()) == 2 })
	})
}
