package mta

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestSpoolReadersAcrossRotation is the replay's lost message in miniature: deliveries finish
// messages while the committer appends the next batch to the same, drained segment. A segment
// must never be closed or removed under a batch in flight, and a reader must not depend on a
// handle another goroutine may close.
func TestSpoolReadersAcrossRotation(t *testing.T) {
	sp, _, err := openSpool(t.TempDir(), 0, 0, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	// Rotate every few batches, so that drained rotations race appends all the time.
	sp.mu.Lock()
	sp.segmentMax, sp.drainedRotate = 64<<10, 8<<10
	sp.mu.Unlock()

	const writers, each = 24, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				data := bytes.Repeat([]byte(id+" "), 300)
				q, err := sp.put(envelope{ID: id, To: []string{"a@example.test"}, Received: time.Now()}, data)
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", id, err)
					return
				}
				got, err := readQueued(sp, q)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("read %s: %d bytes, err %v", id, len(got), err)
				}
				if err := sp.markDone(q, []int{0}); err != nil {
					errs <- fmt.Errorf("mark %s: %w", id, err)
				}
				sp.finish(q)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... %d errors in all", n)
	}
	if d := sp.depth(); d != 0 {
		t.Errorf("depth %d after every message finished, want 0", d)
	}
}

// readQueued reads q's message data the way delivery does.
func readQueued(sp *spool, q *queued) ([]byte, error) {
	f, err := sp.open(q)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(messageReader(f, q))
}

// TestDeliveryAcrossSegmentRotation runs the replay's situation end to end: many concurrent
// sessions, segments rotating every few batches, deliveries finishing messages while new ones
// are appended. Every accepted message must reach the sink, none deferred.
func TestDeliveryAcrossSegmentRotation(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.Limit = 32
	s, addr := startServer(t, cfg)
	s.spool.mu.Lock()
	s.spool.segmentMax, s.spool.drainedRotate = 32<<10, 4<<10
	s.spool.mu.Unlock()

	const clients, each = 16, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := sendSized(addr, fmt.Sprintf("c%d-%d", c, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, 10*time.Second, "every message delivered", func() bool {
		return s.Snapshot().QueueDepth == 0 && len(sink.Messages()) >= clients*each
	})
	if n := len(sink.Messages()); n != clients*each {
		t.Errorf("the sink has %d messages, want %d", n, clients*each)
	}
	if n := metricValue(t, s, "mtastress_mta_deliveries_total", "outcome", "deferred"); n != 0 {
		t.Errorf("%v deferrals, want none", n)
	}
}

// sendSized sends one message of a few KiB in a session of its own.
func sendSized(addr, id string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	body := message(id) + strings.Repeat("padding line of the message body\r\n", 100)
	if err := c.SendMail("sender@example.net", []string{"user1@example.test"}, strings.NewReader(body)); err != nil {
		return fmt.Errorf("message %s: %w", id, err)
	}
	return c.Quit()
}

func TestSpoolReadFailure(t *testing.T) {
	t.Run("a read error mid-message sends no final dot, so the hop accepts nothing truncated", func(t *testing.T) {
		sink := startSink(t)
		s, _ := startServer(t, testConfig(t, sink.Addr()))
		q, err := s.spool.put(envelope{ID: "Q1", From: "a@example.net", To: []string{"b@example.test"},
			Received: time.Now()}, []byte(message("m-1")))
		if err != nil {
			t.Fatal(err)
		}
		defer s.spool.finish(q)

		// A closed handle is what the replay's reader had: every read fails.
		f, err := s.spool.open(q)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		res := s.delivery.sendHop(sink.Addr(), q, f, []int{0})
		if len(res) != 1 || res[0].ok || !res[0].temp || !res[0].local {
			t.Fatalf("results %+v, want one local temporary failure", res)
		}
		if n := len(sink.Messages()); n != 0 {
			t.Fatalf("the sink accepted %d messages from a failed read", n)
		}

		// A fresh handle delivers the whole message.
		f, err = s.spool.open(q)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if res := s.delivery.sendHop(sink.Addr(), q, f, []int{0}); !res[0].ok {
			t.Fatalf("second attempt: %+v", res)
		}
		if n := headerCount(sink, "X-Mtastress-Id: m-1"); n != 1 {
			t.Fatalf("the sink has %d copies, want 1", n)
		}
	})

	t.Run("an unreadable segment is logged at error level and delivered once it is back", func(t *testing.T) {
		sink := startSink(t)
		sink.SetTempFail(true)
		cfg := testConfig(t, sink.Addr())
		logs := &lockedBuffer{}
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), nil))
		s, addr := startServer(t, cfg)
		c := greeted(t, addr)
		expect(t, "final dot", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("m-2")), "250 ")
		eventually(t, 3*time.Second, "a deferral by the sink", func() bool {
			return metricValue(t, s, "mtastress_mta_deliveries_total", "outcome", "deferred") > 0
		})

		// The segment disappears from under delivery (an operator's mistake, a bad disk).
		seg, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "queue", "*.log"))
		if len(seg) != 1 {
			t.Fatalf("segments %v, want one", seg)
		}
		if err := os.Rename(seg[0], seg[0]+".away"); err != nil {
			t.Fatal(err)
		}
		sink.SetTempFail(false)
		eventually(t, 3*time.Second, "a mail log line at error level for the deferral", func() bool {
			return logs.hasLine("level=ERROR", "log=mail", "event=deferred", "local=true")
		})
		if !logs.hasLine("level=ERROR", `msg="message not readable from the spool`) {
			t.Errorf("no operator log line at error level:\n%s", logs)
		}
		if n := metricValue(t, s, "mtastress_mta_spool_read_errors_total"); n == 0 {
			t.Error("the spool read error is not counted")
		}

		// Not sticky: once the file is back, the next retry delivers.
		if err := os.Rename(seg[0]+".away", seg[0]); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "delivery", func() bool { return s.Snapshot().QueueDepth == 0 })
		if n := headerCount(sink, "X-Mtastress-Id: m-2"); n != 1 {
			t.Fatalf("the sink has %d copies, want 1", n)
		}
	})
}

// lockedBuffer is a log destination that tests read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// hasLine reports whether some line holds every one of parts.
func (l *lockedBuffer) hasLine(parts ...string) bool {
	for line := range strings.Lines(l.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
