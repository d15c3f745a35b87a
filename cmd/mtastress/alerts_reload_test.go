package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/testenv"
)

// alertsFile is the service's file: NATS at natsURL with the client name, the relay and the
// admin address, plus the lines of extra.
func alertsFile(natsURL, name, relay, admin, extra string) string {
	return fmt.Sprintf(`nats: {urls: [%s], name: %s}
admin: [%s]
from: mtastress@example.test
relay: %s
settle_window: 300ms
retry_min: 50ms
retry_max: 200ms
send_timeout: 5s
replica: test-1
%s`, natsURL, name, admin, relay, extra)
}

// startAlertsCommand runs `mtastress alerts --config path` in-process until the returned
// channel gives its error; it returns once the service has started, its signals caught.
func startAlertsCommand(t *testing.T, ctx context.Context, path string) (*syncBuffer, <-chan error) {
	t.Helper()
	root := newRoot()
	log := &syncBuffer{}
	root.SetErr(log)
	root.SetOut(io.Discard)
	root.SetArgs([]string{"alerts", "--config", path})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", log)
		}
	})
	waitLog(t, log, `msg="(alert service started)"`)
	return log, done
}

func startTestSink(t *testing.T) *testenv.Sink {
	t.Helper()
	s, err := testenv.StartSink(testenv.SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// stressMail publishes an entry of node into stress and returns the one message relay gets
// for it; earlier is how many the relay had before.
func stressMail(t *testing.T, natsURL string, relay *testenv.Sink, earlier int, node string) testenv.SinkMessage {
	t.Helper()
	p := testPublisher(t, natsURL, "edge", node)
	at := time.Now().UTC()
	p.Entered(events.StressTransition{Episode: events.EpisodeID("edge", node, at), Entered: at, PeakDemand: 14})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := relay.Wait(ctx, earlier+1); err != nil {
		t.Fatalf("the alert about %s: %v", node, err)
	}
	return relay.Messages()[earlier]
}

func hup(t *testing.T) {
	t.Helper()
	// The daemon's handler is the test process's: it has caught SIGHUP since before it logged
	// that the service started.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func rewrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAlertsCommandReloadsOnSIGHUP(t *testing.T) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	before, after := startTestSink(t), startTestSink(t)
	path := writeConfig(t, alertsFile(srv.URL(), "alerts-test", before.Addr(), "ops@example.test", ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log, done := startAlertsCommand(t, ctx, path)

	if m := stressMail(t, srv.URL(), before, 0, "edge-1"); !slices.Equal(m.To, []string{"ops@example.test"}) {
		t.Fatalf("before the reload: to %v", m.To)
	}

	// A new relay and admin address, which apply; a new durable and NATS client name, which
	// need a restart.
	rewrite(t, path, alertsFile(srv.URL(), "renamed", after.Addr(), "oncall@example.test",
		"durable: other-durable\n"))
	hup(t)
	if got := waitLog(t, log, `level=INFO msg="config reloaded" .*applied="?\[([^\]]*)\]`); got != "admin relay" {
		t.Errorf("applied [%s], want [admin relay]", got)
	}
	if got := waitLog(t, log, `level=WARN msg="config changes that need a restart were not applied" keys="?\[([^\]]*)\]`); got != "nats durable" {
		t.Errorf("restart keys [%s], want [nats durable]", got)
	}

	// The running durable consumer goes on, and the next alert takes the new way.
	if m := stressMail(t, srv.URL(), after, 0, "edge-2"); !slices.Equal(m.To, []string{"oncall@example.test"}) {
		t.Errorf("after the reload: to %v", m.To)
	}
	time.Sleep(300 * time.Millisecond)
	if n := before.Count(); n != 1 {
		t.Errorf("the old relay has %d messages, want still 1", n)
	}

	cancel()
	waitExit(t, done, "cancel")
}

func TestAlertsCommandKeepsTheRunningConfigWhenTheFileIsBroken(t *testing.T) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	running, next := startTestSink(t), startTestSink(t)
	path := writeConfig(t, alertsFile(srv.URL(), "alerts-test", running.Addr(), "ops@example.test", ""))
	log, done := startAlertsCommand(t, context.Background(), path)

	// The new relay comes with a key the file does not know: nothing of it applies.
	rewrite(t, path, alertsFile(srv.URL(), "alerts-test", next.Addr(), "oncall@example.test", "settle: 2m\n"))
	hup(t)
	waitLog(t, log, `level=ERROR msg="config not reloaded; the running config stays" err="?[^"]*alerts\.yaml:\d+:\d+: (settle): `)
	if m := stressMail(t, srv.URL(), running, 0, "edge-1"); !slices.Equal(m.To, []string{"ops@example.test"}) {
		t.Errorf("after the broken file: to %v", m.To)
	}
	time.Sleep(300 * time.Millisecond)
	if n := next.Count(); n != 0 {
		t.Errorf("the relay of the broken file got %d messages", n)
	}

	// Mended, the same file reloads: a failed reload leaves the daemon able to reload.
	rewrite(t, path, alertsFile(srv.URL(), "alerts-test", next.Addr(), "oncall@example.test", ""))
	hup(t)
	waitLog(t, log, `msg="config reloaded" .*applied="?\[(admin relay)\]`)
	if m := stressMail(t, srv.URL(), next, 0, "edge-2"); !slices.Equal(m.To, []string{"oncall@example.test"}) {
		t.Errorf("after the mended file: to %v", m.To)
	}

	// SIGTERM still stops it, with exit 0.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, done, "SIGTERM")
	waitLog(t, log, `msg="(alerts stopped)"`)
}
