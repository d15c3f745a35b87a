package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/testenv"
)

// mailhog is shared: each StartMailHog leaves goroutines behind (see testenv), so the package
// starts one. Tests tell their mail apart by cluster, one cluster per test.
var mailhog *testenv.MailHog

func TestMain(m *testing.M) {
	var err error
	if mailhog, err = testenv.StartMailHog(); err != nil {
		fmt.Fprintln(os.Stderr, "alerts tests: MailHog:", err)
		os.Exit(3)
	}
	code := m.Run()
	mailhog.Stop()
	os.Exit(code)
}

var clusters atomic.Int32

// cluster names a test's cluster uniquely, so that -count=N runs do not see each other's mail.
func cluster(base string) string { return fmt.Sprintf("%s-%d", base, clusters.Add(1)) }

// quiet is a settle window short enough for tests and long enough to see it work.
const quiet = 300 * time.Millisecond

// startNATS returns a JetStream client on a fresh server with the streams in place, so
// publishers may start before the service.
func startNATS(t *testing.T) (*testenv.NATS, jetstream.JetStream) {
	t.Helper()
	srv, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// running is a Service with its Run goroutine.
type running struct {
	*Service
	stop func() error
}

func startService(t *testing.T, js jetstream.JetStream, relay string, tweak func(*Config)) *running {
	t.Helper()
	cfg := Config{
		JS: js, Admin: []string{"ops@example.test"}, From: "mtastress@example.test", Relay: relay,
		SettleWindow: quiet, Tick: 50 * time.Millisecond,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, SendTimeout: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var stopped atomic.Bool
	stop := func() error {
		if !stopped.CompareAndSwap(false, true) {
			return nil
		}
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Run did not return within 15 s of cancel")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return &running{Service: s, stop: stop}
}

func publisher(t *testing.T, js jetstream.JetStream, cluster, node string) *events.Publisher {
	t.Helper()
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

// enter publishes an entry into stress now and returns its episode.
func enter(p *events.Publisher, cluster, node string) (string, time.Time) {
	at := time.Now().UTC()
	ep := events.EpisodeID(cluster, node, at)
	p.Entered(events.StressTransition{Episode: ep, Entered: at, PeakDemand: 14})
	return ep, at
}

func exit(p *events.Publisher, ep string, entered time.Time) {
	at := time.Now().UTC()
	p.Exited(events.StressTransition{Episode: ep, Entered: entered, Exited: &at, PeakDemand: 14})
}

// mailOf returns MailHog's messages about one cluster.
func mailOf(t *testing.T, cluster string) []testenv.MailHogMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	all, err := mailhog.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []testenv.MailHogMessage
	for _, m := range all {
		if v := m.Headers["X-Mtastress-Cluster"]; len(v) > 0 && v[0] == cluster {
			out = append(out, m)
		}
	}
	return out
}

// waitMail polls MailHog until the cluster has n messages, failing after within.
func waitMail(t *testing.T, cluster string, n int, within time.Duration) []testenv.MailHogMessage {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := mailOf(t, cluster)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s: %d messages in MailHog after %s, want %d", cluster, len(got), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stillMail waits a bounded time and fails if the cluster's count of messages moves from n.
func stillMail(t *testing.T, cluster string, n int, wait time.Duration) {
	t.Helper()
	time.Sleep(wait)
	if got := mailOf(t, cluster); len(got) != n {
		t.Fatalf("cluster %s: %d messages in MailHog, want still %d: %v", cluster, len(got), n, subjects(got))
	}
}

func subjects(ms []testenv.MailHogMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Subject)
	}
	return out
}

func TestServiceSendsOneAlertPerEpisodeAndNothingOnExit(t *testing.T) {
	c := cluster("one")
	_, js := startNATS(t)
	svc := startService(t, js, mailhog.SMTPAddr(), nil)
	p := publisher(t, js, c, "edge-1")

	ep, entered := enter(p, c, "edge-1")
	got := waitMail(t, c, 1, 10*time.Second)
	m := got[0]
	if want := "MTA Stress: edge-1 (" + c + ")"; !strings.HasPrefix(m.Subject, want) {
		t.Errorf("subject %q, want prefix %q", m.Subject, want)
	}
	if len(m.To) != 1 || m.To[0] != "ops@example.test" {
		t.Errorf("recipients %v", m.To)
	}
	if id := m.Headers["Message-ID"]; len(id) != 1 || id[0] != messageID(ep) {
		t.Errorf("Message-ID %v, want %s", id, messageID(ep))
	}
	for _, want := range []string{"T10", "10 concurrent SMTP sessions", entered.Format(time.RFC3339), "still"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q", want)
		}
	}

	// Samples in the episode and the exit: nothing more.
	p.Sample(events.LoadSample{Active: 10, Waiting: 3, Stress: true, Episode: ep, PeakDemand: 13})
	exit(p, ep, entered)
	stillMail(t, c, 1, time.Second)
	if sent := svc.Sent(); len(sent) != 1 || sent[0].Kind != KindStress || sent[0].Key != ep {
		t.Errorf("Sent() = %+v", sent)
	}

	reply, err := js.Conn().Request(StatusSubject, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(reply.Data, &st); err != nil {
		t.Fatalf("status %q: %v", reply.Data, err)
	}
	want := []ClusterStatus{{Cluster: c, Nodes: 1, Sent: 1}}
	if diff := cmp.Diff(want, st.Clusters); diff != "" {
		t.Errorf("status clusters (-want +got):\n%s", diff)
	}
}

func TestServiceRestartMidEpisodeSendsNoSecondEmail(t *testing.T) {
	c := cluster("restart")
	_, js := startNATS(t)
	first := startService(t, js, mailhog.SMTPAddr(), nil)
	p := publisher(t, js, c, "edge-1")

	ep, entered := enter(p, c, "edge-1")
	waitMail(t, c, 1, 10*time.Second)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	// The episode goes on while the service is away, and ends after it is back.
	p.Sample(events.LoadSample{Active: 10, Waiting: 5, Stress: true, Episode: ep, PeakDemand: 15})
	startService(t, js, mailhog.SMTPAddr(), nil)
	p.Sample(events.LoadSample{Active: 10, Waiting: 1, Stress: true, Episode: ep, PeakDemand: 11})
	exit(p, ep, entered)
	stillMail(t, c, 1, 1500*time.Millisecond)
}

func TestServiceSendsOnceWhenEventsAreRedelivered(t *testing.T) {
	c := cluster("redeliver")
	_, js := startNATS(t)
	startService(t, js, mailhog.SMTPAddr(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The same event twice, with different Nats-Msg-Ids so that the stream keeps both: the
	// service's own sequence check has to catch it.
	n := events.Node{Cluster: c, Node: "edge-1", Model: "T10", Limit: 10}
	at := time.Now().UTC()
	env, err := events.Encode(events.TypeStressEntered, 7, at, n, &events.StressTransition{
		Node: n, Episode: events.EpisodeID(n.Cluster, n.Node, at), Entered: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		msg := nats.NewMsg(events.StressSubject(n.Cluster, n.Node))
		msg.Data = mustJSON(t, env)
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-copy-%d", env.ID, i))
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitMail(t, c, 1, 10*time.Second)
	stillMail(t, c, 1, time.Second)
}

func TestServiceTerminatesMalformedEventsAndGoesOn(t *testing.T) {
	c := cluster("junk")
	_, js := startNATS(t)
	startService(t, js, mailhog.SMTPAddr(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, junk := range []string{"not json", `{"specversion":"1.0","type":"io.example.other"}`} {
		if _, err := js.Publish(ctx, events.StressSubject(c, "edge-1"), []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	p := publisher(t, js, c, "edge-1")
	enter(p, c, "edge-1")
	waitMail(t, c, 1, 10*time.Second)
}

func TestServiceSendsFrequentAdvisoryAcrossRestart(t *testing.T) {
	c := cluster("weekly")
	_, js := startNATS(t)
	first := startService(t, js, mailhog.SMTPAddr(), nil)
	p := publisher(t, js, c, "edge-1")

	ep, entered := enter(p, c, "edge-1")
	exit(p, ep, entered)
	waitMail(t, c, 1, 10*time.Second)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	// The weekly count lives in the bucket, so the restarted service sees the second entry.
	startService(t, js, mailhog.SMTPAddr(), nil)
	enter(p, c, "edge-1")
	got := waitMail(t, c, 3, 10*time.Second)
	var frequent []string
	for _, m := range got {
		if strings.HasPrefix(m.Subject, "Frequent MTA Stress:") {
			frequent = append(frequent, m.Subject)
			if d := m.Headers["X-Mtastress-Diagnosis"]; len(d) != 1 || d[0] != DiagStandalone {
				t.Errorf("diagnosis %v, want %s", d, DiagStandalone)
			}
		}
	}
	if len(frequent) != 1 {
		t.Fatalf("frequent advisories %v, want one", frequent)
	}
	stillMail(t, c, 3, quiet+500*time.Millisecond)
}

func TestServiceRetriesWhileTheRelayIsDown(t *testing.T) {
	c := cluster("down")
	_, js := startNATS(t)
	var down atomic.Bool
	down.Store(true)
	var refused atomic.Int32
	sink, err := testenv.StartSink(testenv.SinkOptions{TempFail: func(string, []string) bool {
		if down.Load() {
			refused.Add(1)
			return true
		}
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Stop)
	startService(t, js, sink.Addr(), nil)
	p := publisher(t, js, c, "edge-1")
	enter(p, c, "edge-1")

	deadline := time.Now().Add(10 * time.Second)
	for refused.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("relay refused %d attempts, want 3 before it comes back", refused.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sink.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := sink.Count(); n != 1 {
		t.Fatalf("relay got %d messages, want 1", n)
	}
}

func TestTwoReplicasSendOneEmailPerEpisode(t *testing.T) {
	c := cluster("pair")
	_, js := startNATS(t)
	a := startService(t, js, mailhog.SMTPAddr(), func(c *Config) { c.Replica = "a" })
	b := startService(t, js, mailhog.SMTPAddr(), func(c *Config) { c.Replica = "b" })
	const nodes = 4
	for i := range nodes {
		node := fmt.Sprintf("edge-%d", i)
		p := publisher(t, js, c, node)
		for range 5 {
			p.Sample(events.LoadSample{Active: 2})
			time.Sleep(5 * time.Millisecond)
		}
		enter(p, c, node)
	}
	waitMail(t, c, nodes, 10*time.Second)
	stillMail(t, c, nodes, time.Second)
	if got := len(a.Sent()) + len(b.Sent()); got != nodes {
		t.Errorf("replicas report %d sent, want %d", got, nodes)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
