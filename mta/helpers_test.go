package mta

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/testenv"
)

// startSink starts testenv's recording sink as the next hop and stops it at the end.
func startSink(t *testing.T) *testenv.Sink {
	t.Helper()
	s, err := testenv.StartSink(testenv.SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// headerCount counts the messages at s carrying the header line h.
func headerCount(s *testenv.Sink, h string) int {
	n := 0
	for _, m := range s.Messages() {
		if bytes.Contains(m.Data, []byte(h+"\r\n")) {
			n++
		}
	}
	return n
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

// recorder is an EventSink that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	entered []events.StressTransition
	exited  []events.StressTransition
	samples []events.LoadSample
}

func (r *recorder) Sample(s events.LoadSample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *recorder) Entered(t events.StressTransition) {
	r.mu.Lock()
	r.entered = append(r.entered, t)
	r.mu.Unlock()
}

func (r *recorder) Exited(t events.StressTransition) {
	r.mu.Lock()
	r.exited = append(r.exited, t)
	r.mu.Unlock()
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entered), len(r.exited)
}

// fakeClock is a settable Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testConfig is a small node with quick retries, relaying to relay.
func testConfig(t testing.TB, relay string) Config {
	cfg := DefaultConfig()
	cfg.Node, cfg.Cluster, cfg.Model, cfg.Limit = "edge-1", "edge", "T10", 4
	cfg.Hostname = "mx.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.Relay = relay
	cfg.SpoolDir = t.TempDir()
	cfg.ClientCap = 100
	cfg.SlotWait = 2 * time.Second
	cfg.Cooldown = 100 * time.Millisecond
	cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	cfg.DeliveryTimeout = 5 * time.Second
	cfg.SampleInterval = 50 * time.Millisecond
	cfg.Logger = testLogger(t)
	return cfg
}

// testLogger writes to the test's log, so that a failure shows what the server did.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	defer func() { recover() }() // a log line after the test ended is dropped
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startServer starts a Server on 127.0.0.1:0 and shuts it down at the end of the test.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, l.Addr().String()
}

// rawClient speaks SMTP line by line, for tests that look at the exact replies.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	return dialRawFrom(t, addr, netip.Addr{})
}

// dialRawFrom dials from a chosen loopback address, so that tests can be several clients.
func dialRawFrom(t *testing.T, addr string, from netip.Addr) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

// reply reads one whole reply within d and returns its last line; "" on timeout or close.
func (c *rawClient) reply(d time.Duration) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return ""
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || line[3] != '-' {
			return line
		}
	}
}

func (c *rawClient) send(format string, a ...any) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", a...); err != nil {
		c.t.Fatalf("send %q: %v", fmt.Sprintf(format, a...), err)
	}
}

// cmd sends a command and returns its reply.
func (c *rawClient) cmd(format string, a ...any) string {
	c.t.Helper()
	c.send(format, a...)
	return c.reply(5 * time.Second)
}

// expect fails the test unless reply starts with prefix.
func expect(t *testing.T, what, reply, prefix string) {
	t.Helper()
	if !strings.HasPrefix(reply, prefix) {
		t.Fatalf("%s: got %q, want %q...", what, reply, prefix)
	}
}

// greeted dials and reads the greeting, then says EHLO.
func greeted(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	expect(t, "greeting", c.reply(5*time.Second), "220 ")
	expect(t, "EHLO", c.cmd("EHLO client.test"), "250 ")
	return c
}

// sendMessage sends one message over c (greeted) and returns the reply to the final dot.
func (c *rawClient) sendMessage(from string, to []string, body string) string {
	c.t.Helper()
	expect(c.t, "MAIL", c.cmd("MAIL FROM:<%s>", from), "250 ")
	for _, r := range to {
		expect(c.t, "RCPT "+r, c.cmd("RCPT TO:<%s>", r), "250 ")
	}
	expect(c.t, "DATA", c.cmd("DATA"), "354 ")
	c.conn.Write([]byte(body))
	return c.cmd(".")
}

// message is a small message with a unique id header, as the simulator sends them.
func message(id string) string {
	return "From: <sender@example.net>\r\nTo: <user1@example.test>\r\nSubject: test\r\nX-Mtastress-Id: " + id +
		"\r\n\r\nHello.\r\n"
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveExempt serves an exempt listener of s on 127.0.0.1:0.
func serveExempt(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeExempt(l)
	return l.Addr().String()
}

// metricValue sums the samples of a metric family whose labels include the given pairs.
func metricValue(t *testing.T, s *Server, name string, labelPairs ...string) float64 {
	t.Helper()
	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labelPairs[i] && lp.GetValue() == labelPairs[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
