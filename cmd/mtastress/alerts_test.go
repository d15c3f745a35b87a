package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/alerts"
	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/testenv"
)

// lockedBuffer is a bytes.Buffer the daemon may write while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runOut executes the CLI in-process and returns its exit code and standard output.
func runOut(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	code := exitCode(root.ExecuteContext(context.Background()))
	return code, out.String()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAlertsCheck(t *testing.T) {
	good := writeConfig(t, "nats: {urls: [nats://127.0.0.1:4222]}\nadmin: ops@example.test\n"+
		"from: mtastress@example.test\nrelay: 127.0.0.1:1025\n")
	bad := writeConfig(t, "nats: {urls: [nats://127.0.0.1:4222]}\nadmin: ops@example.test\n"+
		"from: mtastress@example.test\nrelay: 127.0.0.1:1025\nsettle: 2m\n")
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"a valid file", []string{"alerts", "--config", good, "--check"}, exitOK},
		{"the example file", []string{"alerts", "--config", "../../alerts/testdata/alerts.example.yaml", "--check"}, exitOK},
		{"an unknown key", []string{"alerts", "--config", bad, "--check"}, exitBadInput},
		{"an unknown key, without --check", []string{"alerts", "--config", bad}, exitBadInput},
		{"no --config", []string{"alerts", "--check"}, exitBadInput},
		{"a file that is not there", []string{"alerts", "--config", "/nonexistent/alerts.yaml", "--check"}, exitBadInput},
		{"history without a target", []string{"alerts", "history"}, exitBadInput},
		{"history with both targets", []string{"alerts", "history", "--config", good, "--nats", "nats://x:4222"}, exitBadInput},
		{"status with a URL without scheme", []string{"alerts", "status", "--nats", "127.0.0.1:4222"}, exitBadInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, out := runOut(t, c.args...); got != c.want {
				t.Fatalf("exit %d, want %d; output %q", got, c.want, out)
			}
		})
	}
}

// TestAlertsCommandEndToEnd runs the real daemon against in-process NATS and MailHog: an entry
// into stress becomes an email, history and status show it, and cancelling stops it cleanly.
func TestAlertsCommandEndToEnd(t *testing.T) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	mh, err := testenv.StartMailHog()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mh.Stop)
	// The server asks for no credentials and ignores these; they are here to be redacted.
	path := writeConfig(t, fmt.Sprintf(`nats: {urls: [%s], name: alerts-test, user: alerts, password: s3cret-pw}
admin: [ops@example.test]
from: mtastress@example.test
relay: %s
settle_window: 300ms
retry_min: 50ms
retry_max: 200ms
send_timeout: 5s
replica: test-1
`, srv.URL(), mh.SMTPAddr()))

	// Before the service runs, the tools say so with exit 3.
	if code, out := runOut(t, "alerts", "status", "--nats", srv.URL()); code != exitEnvironment {
		t.Errorf("status with no service: exit %d, want %d; %q", code, exitEnvironment, out)
	}
	if code, out := runOut(t, "alerts", "history", "--nats", srv.URL()); code != exitEnvironment {
		t.Errorf("history with no bucket: exit %d, want %d; %q", code, exitEnvironment, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	root := newRoot()
	root.SetArgs([]string{"alerts", "--config", path})
	root.SetOut(&logs)
	root.SetErr(&logs)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	p := testPublisher(t, srv.URL(), "edge", "edge-1")
	at := time.Now().UTC()
	ep := events.EpisodeID("edge", "edge-1", at)
	p.Entered(events.StressTransition{Episode: ep, Entered: at, PeakDemand: 14})

	m := waitForMail(t, mh, "MTA Stress: edge-1 (edge)", 10*time.Second)
	if len(m.To) != 1 || m.To[0] != "ops@example.test" {
		t.Errorf("recipients %v", m.To)
	}

	// The relay's 250 comes before the service records the send: poll the history.
	var sent []alerts.SentAlert
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out := runOut(t, "alerts", "history", "--config", path, "--json")
		if code != exitOK {
			t.Fatalf("history --json: exit %d: %s", code, out)
		}
		if err := json.Unmarshal([]byte(out), &sent); err != nil {
			t.Fatalf("history --json: %v\n%s", err, out)
		}
		if len(sent) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(sent) != 1 || sent[0].Key != ep || sent[0].Kind != alerts.KindStress || sent[0].Node != "edge-1" {
		t.Fatalf("history: %+v, want the one stress alert of episode %s", sent, ep)
	}
	_, table := runOut(t, "alerts", "history", "--nats", srv.URL(), "--node", "edge-1")
	for _, want := range []string{"KIND", at.Format(time.RFC3339), "stress", "edge-1", "MTA Stress: edge-1 (edge)"} {
		if !strings.Contains(table, want) {
			t.Errorf("history table lacks %q:\n%s", want, table)
		}
	}
	if _, other := runOut(t, "alerts", "history", "--nats", srv.URL(), "--node", "edge-2"); !strings.Contains(other, "no alerts") {
		t.Errorf("history of another node:\n%s", other)
	}

	code, out := runOut(t, "alerts", "status", "--config", path, "--json")
	var st alerts.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: exit %d: %s", code, out)
	}
	if st.Replica != "test-1" || len(st.Clusters) != 1 || st.Clusters[0].Cluster != "edge" || st.Clusters[0].Sent != 1 {
		t.Errorf("status %+v", st)
	}
	if _, out := runOut(t, "alerts", "status", "--nats", srv.URL()); !strings.Contains(out, "replica test-1") {
		t.Errorf("status table:\n%s", out)
	}

	cancel()
	waitExit(t, done, "cancel")
	l := logs.String()
	for _, want := range []string{"alerts config", "nats.password=REDACTED", "alerts.relay=" + mh.SMTPAddr(),
		"alerts.settle_window=300ms", "alerts.durable=mtastress-alerts", "alerts stopped"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, "s3cret-pw") {
		t.Errorf("log shows the NATS password:\n%s", l)
	}
}

func testPublisher(t *testing.T, url, cluster, node string) *events.Publisher {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The streams exist before the service sets them up, so that nothing published is lost.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	p, err := events.NewPublisher(events.PublisherConfig{
		Node: events.Node{Cluster: cluster, Node: node, Model: "T10", Limit: 10},
		JS:   js, RetryDelay: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func waitForMail(t *testing.T, mh *testenv.MailHog, subjectPrefix string, within time.Duration) testenv.MailHogMessage {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msgs, err := mh.Messages(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if strings.HasPrefix(m.Subject, subjectPrefix) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail with subject %q in MailHog after %s (%d messages)", subjectPrefix, within, len(msgs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFilterHistory(t *testing.T) {
	now := time.Now()
	all := []alerts.SentAlert{
		{Key: "old", Cluster: "edge", Node: "edge-1", Sent: now.Add(-9 * 24 * time.Hour)},
		{Key: "e1", Cluster: "edge", Node: "edge-1", Sent: now.Add(-time.Hour)},
		{Key: "e2", Cluster: "edge", Node: "edge-2", Sent: now.Add(-time.Hour)},
		{Key: "edge-wide", Cluster: "edge", Sent: now.Add(-time.Hour)},
		{Key: "b1", Cluster: "backup", Node: "edge-1", Sent: now.Add(-time.Hour)},
		{Key: "lab-wide", Cluster: "lab", Sent: now.Add(-time.Hour)},
	}
	since := now.Add(-historyWindow)
	for _, c := range []struct {
		name, node, cluster string
		want                string
	}{
		{"everything of the window", "", "", "e1 e2 edge-wide b1 lab-wide"},
		{"a node, with its clusters' advisories", "edge-1", "", "e1 edge-wide b1"},
		{"a node of one cluster", "edge-1", "edge", "e1 edge-wide"},
		{"a cluster", "", "lab", "lab-wide"},
		{"a node never alerted", "edge-9", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var keys []string
			for _, a := range filterHistory(all, c.node, c.cluster, since) {
				keys = append(keys, a.Key)
			}
			if got := strings.Join(keys, " "); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// waitExit waits for the alerts command to end, after what (a cancel, a signal), with exit 0.
func waitExit(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if code := exitCode(err); code != exitOK {
			t.Fatalf("alerts exited %d after %s: %v", code, what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("alerts did not stop within 10 s of %s", what)
	}
}
