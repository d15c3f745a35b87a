package simulator

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
	"github.com/mtastress/mtastress/testenv"
)

// faultYAML is a short spam run on two T10 nodes: each enters stress early in the burst, stays
// in it to the end, and leaves it in the calm. One episode per node, so exactly one entry and
// one exit on the stream for each, and one "MTA Stress" email for each.
const faultYAML = `
name: fault-burst
description: A short spam run on two nodes, for the NATS fault tests.
seed: 5
mta: {cooldown: 2s}
topology:
  cluster: edge
  nodes:
    - {name: edge-1, model: T10}
    - {name: edge-2, model: T10}
profiles:
  normal: {messages: 1, recipients: 1..2, size: 1KiB..4KiB}
  spam: {messages: 1, recipients: 2..5, size: 1KiB..4KiB, hold: 1s..2s}
phases:
  - {name: baseline, duration: 1s, rate: 2/s, mix: {normal: 1}}
  - {name: burst, duration: 5s, rate: 30/s, ramp: 1s, mix: {spam: 0.9, normal: 0.1}}
  - {name: calm, duration: 2s, rate: 2/s, mix: {normal: 1}}
expect:
  - {alert: stress, node: edge-1, count: 1}
  - {alert: stress, node: edge-2, count: 1}
  - {alert: frequent, count: 0}
  - {lost: 0}
`

func faultScenario(t *testing.T) (*scenarios.Scenario, *scenarios.Catalog) {
	t.Helper()
	cat := scenarios.DefaultCatalog()
	sc, err := scenarios.Parse("fault-burst.yaml", []byte(faultYAML), cat)
	if err != nil {
		t.Fatal(err)
	}
	return sc, cat
}

// replayResult is what a replay running in the background hands back.
type replayResult struct {
	rep *Report
	err error
}

func replayInBackground(ctx context.Context, sc *scenarios.Scenario, tg Target) <-chan replayResult {
	out := make(chan replayResult, 1)
	go func() {
		rep, err := Replay(ctx, sc, tg, ReplayOptions{})
		out <- replayResult{rep, err}
	}()
	return out
}

// waitFor polls cond every 20 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// anyNode reports whether some node of the stack is in the state cond asks for.
func anyNode(st *Stack, cond func(NodeState) bool) bool {
	for i := range st.Nodes {
		if s, ok := st.State(i); ok && cond(s) {
			return true
		}
	}
	return false
}

// checkPassed fails the test with the report's text unless every expectation held.
func checkPassed(t *testing.T, res replayResult) *Report {
	t.Helper()
	if res.err != nil {
		t.Fatalf("replay: %v", res.err)
	}
	var text strings.Builder
	res.rep.WriteText(&text)
	if !res.rep.Passed {
		t.Fatalf("report did not pass:\n%s", text.String())
	}
	t.Logf("replay took %d ms", res.rep.DurationMS)
	return res.rep
}

// streamTransitions reads MTA_EVENTS and counts transitions by episode and type.
func streamTransitions(t *testing.T, url string) map[string]map[string]int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]map[string]int)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("message %d does not decode: %v", seq, err)
		}
		ep := ev.Transition.Episode
		if out[ep] == nil {
			out[ep] = make(map[string]int)
		}
		out[ep][ev.Type]++
	}
	return out
}

// checkOncePerEpisode holds the stream to the nodes' own episodes: every one has exactly one
// entry and one exit, and the stream has nothing else.
func checkOncePerEpisode(t *testing.T, rep *Report, got map[string]map[string]int) {
	t.Helper()
	want := 0
	for _, n := range rep.Nodes {
		for _, ep := range n.StressEpisodes {
			want++
			c := got[ep.ID]
			if c[events.TypeStressEntered] != 1 || c[events.TypeStressExited] != 1 {
				t.Errorf("episode %s on the stream: %v, want one entry and one exit", ep.ID, c)
			}
		}
	}
	if want == 0 || len(got) != want {
		t.Errorf("the stream has %d episodes, the nodes had %d: %v", len(got), want, got)
	}
}

// checkStressAlerts counts the "MTA Stress" emails in MailHog by node: one per episode.
func checkStressAlerts(t *testing.T, st *Stack, rep *Report) {
	t.Helper()
	msgs, err := st.MailHog.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string]int{}
	for _, m := range msgs {
		if a, ok := classify(m); ok && a.Kind == "stress" {
			byNode[a.Node]++
		}
	}
	for _, n := range rep.Nodes {
		if byNode[n.Name] != len(n.StressEpisodes) {
			t.Errorf("%s: %d stress emails for %d episodes", n.Name, byNode[n.Name], len(n.StressEpisodes))
		}
	}
}

// TestMailFlowsWhileNATSIsDownAtStartAndEventsFollow starts the MTAs with no NATS to reach:
// they serve mail at once, their stress entries wait in the publishers' outboxes, and once NATS
// is up (and the alert service with it) the transitions arrive and the alerts follow.
func TestMailFlowsWhileNATSIsDownAtStartAndEventsFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("replay takes about 15 s")
	}
	sc, cat := faultScenario(t)
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Server().Shutdown()
	ns.Server().WaitForShutdown()
	st := stackWithoutNATSYet(t, sc, ns)
	defer st.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := replayInBackground(ctx, sc, st)
	waitFor(t, 20*time.Second, "a node in stress", func() bool {
		return anyNode(st, func(s NodeState) bool { return s.InStress })
	})
	// Mail reached the next hop before NATS ever answered.
	if st.Sink.Count() == 0 {
		t.Error("nothing delivered while NATS was down")
	}
	if err := ns.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := st.startAlerts(cat); err != nil {
		t.Fatal(err)
	}
	rep := checkPassed(t, <-done)
	checkOncePerEpisode(t, rep, streamTransitions(t, ns.URL()))
	checkStressAlerts(t, st, rep)
}

// stackWithoutNATSYet builds the embedded stack's MTAs around a NATS that is down. The alert
// service is left out: it needs NATS to set up its consumers, and the test starts it later.
func stackWithoutNATSYet(t *testing.T, sc *scenarios.Scenario, ns *testenv.NATS) *Stack {
	t.Helper()
	dir, err := os.MkdirTemp("", "mtastress-stack-")
	if err != nil {
		t.Fatal(err)
	}
	st := &Stack{clock: NewClock(), log: faultLogger(t), dir: dir, NATS: ns, natsURL: ns.URL(),
		replicas: events.ReplicasSingle}
	if st.MailHog, err = testenv.StartMailHog(); err != nil {
		t.Fatal(err)
	}
	if st.Sink, err = testenv.StartSink(testenv.SinkOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range sc.Topology.Nodes {
		start := time.Now()
		if err := st.startNode(sc, n); err != nil {
			t.Fatalf("node %s with NATS down: %v", n.Name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("node %s took %s to start with NATS down", n.Name, d)
		}
	}
	return st
}

// TestNATSRestartMidReplayLosesAndDuplicatesNothing takes NATS away as the burst builds, while
// the entries are being published, and brings it back on the same store: every episode still
// has one entry and one exit on the stream, and one alert.
func TestNATSRestartMidReplayLosesAndDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("replay takes about 15 s")
	}
	sc, cat := faultScenario(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := StartStack(ctx, sc, StackOptions{Catalog: cat, Logger: faultLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	done := replayInBackground(ctx, sc, st)
	waitFor(t, 20*time.Second, "the burst filling a node", func() bool {
		return anyNode(st, func(s NodeState) bool { return s.Active >= 5 })
	})
	st.NATS.Server().Shutdown()
	st.NATS.Server().WaitForShutdown()
	waitFor(t, 20*time.Second, "a node in stress", func() bool {
		return anyNode(st, func(s NodeState) bool { return s.InStress })
	})
	time.Sleep(time.Second) // let the publishers retry against nothing
	if err := st.NATS.Restart(); err != nil {
		t.Fatal(err)
	}
	rep := checkPassed(t, <-done)
	checkOncePerEpisode(t, rep, streamTransitions(t, st.NATSURL()))
	checkStressAlerts(t, st, rep)
}

// TestReplayOnAnExternalNATS runs the stack against a NATS it did not start, as `mtastress
// replay --nats URL` does. With MTASTRESS_LONG set it runs a second time on the same NATS: the
// streams are set up again without harm, and the second run's events are not taken for the
// first run's (fresh sequences, so new message ids). The alert state then holds the first run's
// entries, so only the stress alerts are expected: the weekly rule rightly sees two entries.
func TestReplayOnAnExternalNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("replay takes about 12 s")
	}
	runs := 1
	if os.Getenv("MTASTRESS_LONG") != "" {
		runs = 2
	}
	sc, cat := faultScenario(t)
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for run := 1; run <= runs; run++ {
		if run == 2 {
			sc.Expect = stressExpectationsOnly(sc.Expect)
		}
		replayOnce(ctx, t, sc, StackOptions{Catalog: cat, NATSURL: ns.URL(), Logger: faultLogger(t)})
	}
	got := streamTransitions(t, ns.URL())
	if want := runs * len(sc.Topology.Nodes); len(got) != want {
		t.Errorf("%d episodes on the external stream after %d runs, want %d: %v", len(got), runs, want, got)
	}
}

// replayOnce starts a stack, replays sc on it, checks the report and the stress emails, and
// stops the stack.
func replayOnce(ctx context.Context, t *testing.T, sc *scenarios.Scenario, opts StackOptions) {
	t.Helper()
	st, err := StartStack(ctx, sc, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.NATS != nil {
		t.Error("the stack started a NATS of its own")
	}
	var res replayResult
	res.rep, res.err = Replay(ctx, sc, st, ReplayOptions{})
	rep := checkPassed(t, res)
	checkStressAlerts(t, st, rep)
}

func stressExpectationsOnly(in []scenarios.Expectation) []scenarios.Expectation {
	var out []scenarios.Expectation
	for _, e := range in {
		if e.Kind != scenarios.KindAlert || e.Alert == scenarios.AlertStress {
			out = append(out, e)
		}
	}
	return out
}

func TestAStackOnAnExternalNATSRefusesSkips(t *testing.T) {
	cat := scenarios.DefaultCatalog()
	yaml := strings.Replace(faultYAML, "expect:", "  - {name: later, duration: 1d, skip: true}\nexpect:", 1)
	sc, err := scenarios.Parse("skip.yaml", []byte(yaml), cat)
	if err != nil {
		t.Fatal(err)
	}
	_, err = StartStack(context.Background(), sc, StackOptions{Catalog: cat, NATSURL: "nats://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "later") {
		t.Fatalf("StartStack = %v, want the skip phase refused", err)
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("StartStack = %v, want ErrNotSupported", err)
	}
}

// faultLogger sends the stack's warnings and errors to the test log, so a failure shows what
// the components saw. Lines after the test has ended are dropped.
func faultLogger(t *testing.T) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// TestAStackOnAnUnreachableNATSFailsToStart: `replay --nats` at a NATS that does not answer is
// an environment failure (exit 3), and a prompt one.
func TestAStackOnAnUnreachableNATSFailsToStart(t *testing.T) {
	sc, cat := faultScenario(t)
	start := time.Now()
	_, err := StartStack(context.Background(), sc, StackOptions{Catalog: cat, NATSURL: "nats://127.0.0.1:1"})
	want := "no NATS server answered at nats://127.0.0.1:1"
	if !errors.Is(err, ErrEnvironment) || !strings.Contains(err.Error(), want) {
		t.Fatalf("StartStack = %v, want ErrEnvironment saying no server answered", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("failing took %s", d)
	}
	t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
}
