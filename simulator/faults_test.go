package simulator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/mtastress/mtastress/alerts"
	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/scenarios"
)

// Fault rows of a whole replay: MailHog away then back, the alert service killed in the middle
// of an episode. Each says what was accepted, delivered and alerted. They run with
// MTASTRESS_FAULTS=1 (`just faults`); TestReplayLeavesNothingBehind runs always (not -short).

const faultsEnv = "MTASTRESS_FAULTS"

func longFaults(t *testing.T) {
	t.Helper()
	if os.Getenv(faultsEnv) == "" {
		t.Skipf("a long fault row: set %s=1 (just faults)", faultsEnv)
	}
}

// faultBurst holds one small node in stress for about ten seconds: one episode, one alert.
const faultBurst = `
name: fault-burst
description: A small node held in stress for about ten seconds, for fault tests.
seed: 11
mta: {cooldown: 2s}
models: {T10: 4}
topology:
  cluster: faults
  nodes:
    - {name: node-1, model: T10}
profiles:
  hold: {messages: 1, recipients: 1..2, size: 1KiB..4KiB, hold: 1s..2s}
  normal: {messages: 1, recipients: 1, size: 1KiB}
phases:
  - {name: burst, duration: 12s, rate: 6/s, mix: {hold: 1}}
  - {name: calm, duration: 2s, rate: 1/s, mix: {normal: 1}}
expect:
  - {alert: stress, node: node-1, count: 1}
  - {alert: frequent, count: 0}
  - {lost: 0}
`

// quietRun stays under the limit: no episode, no alert.
const quietRun = `
name: quiet-run
description: A few messages well under the limit.
seed: 3
topology:
  cluster: quiet
  nodes:
    - {name: node-1, model: T10}
profiles:
  normal: {messages: 1, recipients: 1..2, size: 1KiB..4KiB}
phases:
  - {name: trickle, duration: 2s, rate: 3/s, mix: {normal: 1}}
expect:
  - {alert: stress, count: 0}
  - {lost: 0}
`

// faultStack starts the embedded stack for the scenario text. At the end of the test it
// closes the stack and checks that the goroutines and descriptors of the test's start are all
// that is left.
func faultStack(t *testing.T, ctx context.Context, yaml string) (*Stack, *scenarios.Scenario) {
	t.Helper()
	cat := scenarios.DefaultCatalog()
	sc, err := scenarios.Parse("faults.yaml", []byte(yaml), cat)
	if err != nil {
		t.Fatal(err)
	}
	fds := fdTargets(t)
	ignore := goleak.IgnoreCurrent()
	st, err := StartStack(ctx, sc, StackOptions{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		deadline := time.Now().Add(10 * time.Second)
		for len(newFDs(t, fds)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if extra := newFDs(t, fds); len(extra) > 0 {
			t.Errorf("descriptors open after the stack closed that were not at the start: %v", extra)
		}
		// MailHog's API starts goroutines that nothing can stop (testenv's TODO on MailHog).
		if err := goleak.Find(ignore,
			goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/api.CreateAPI.func1"),
			goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/api.createAPIv1.func1"),
			goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/api.createAPIv2.func1"),
			goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/websockets.(*Hub).run"),
		); err != nil {
			t.Errorf("goroutines left after the stack closed: %v", err)
		}
	})
	return st, sc
}

// fdTargets maps each open descriptor of this process to what it refers to.
func fdTargets(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out[e.Name()] = target
	}
	return out
}

// newFDs lists the descriptors open now that were not open, to the same thing, at the start.
func newFDs(t *testing.T, start map[string]string) []string {
	t.Helper()
	var extra []string
	for fd, target := range fdTargets(t) {
		if start[fd] != target && !strings.HasPrefix(target, "/proc/") {
			extra = append(extra, fd+" → "+target)
		}
	}
	return extra
}

// stopStackAlerts stops the stack's own alert service, so that one the test controls takes
// its place on the same durable consumers and bucket.
func stopStackAlerts(st *Stack) {
	st.stopAlerts()
	<-st.alertsDone
	st.stopAlerts = nil
}

// startReplay runs the replay and hands its report over when it ends.
func startReplay(ctx context.Context, sc *scenarios.Scenario, tg Target) <-chan replayOutcome {
	out := make(chan replayOutcome, 1)
	go func() {
		rep, err := Replay(ctx, sc, tg, ReplayOptions{})
		out <- replayOutcome{rep, err}
	}()
	return out
}

type replayOutcome struct {
	rep *Report
	err error
}

// inStress reports whether the stack's first node is in stress.
func inStress(st *Stack) func() bool {
	return func() bool { return st.Nodes[0].Server.Snapshot().InStress }
}

// waitUntil polls cond every 50 ms until it holds, failing after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stressMails lists the "MTA Stress" emails in MailHog.
func stressMails(t *testing.T, ctx context.Context, st *Stack) []time.Time {
	t.Helper()
	msgs, err := st.MailHog.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, StressPrefix) {
			out = append(out, m.Created)
		} else {
			t.Errorf("an unexpected email in MailHog: %q", m.Subject)
		}
	}
	return out
}

// checkReport fails unless the replay passed with nothing lost, and logs its row.
func checkReport(t *testing.T, row string, res replayOutcome, mails int) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("replay: %v", res.err)
	}
	var text strings.Builder
	res.rep.WriteText(&text)
	n := res.rep.Nodes[0]
	t.Logf("%s: accepted %d, delivered %d, lost %d, duplicated %d; sessions %d (421: %d); "+
		"episodes %d; alerted %d", row, n.Messages.Accepted, n.Messages.Delivered, n.Messages.Lost,
		n.Messages.Duplicated, n.Sessions.Attempted, n.Sessions.Tempfailed, len(n.StressEpisodes), mails)
	if !res.rep.Passed {
		t.Errorf("the report did not pass:\n%s", text.String())
	}
	if n.Messages.Accepted == 0 || n.Messages.Lost != 0 {
		t.Errorf("messages %+v: want some accepted and none lost", n.Messages)
	}
}

func TestReplayLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("a replay of a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// faultStack's cleanup is the check: goroutines and descriptors back to the start.
	st, sc := faultStack(t, ctx, quietRun)
	res := <-startReplay(ctx, sc, st)
	checkReport(t, "a quiet replay", res, len(stressMails(t, ctx, st)))
}

func TestReplayWithMailHogAwayThenBack(t *testing.T) {
	longFaults(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, sc := faultStack(t, ctx, faultBurst)
	stopStackAlerts(st)
	hop := startRelayHop(t, st.MailHog.SMTPAddr())
	hop.Down()
	a := startAlertsChild(t, st.NATS.URL(), hop.Addr())
	nc := statusConn(t, st)

	done := startReplay(ctx, sc, st)
	waitUntil(t, 20*time.Second, "the node to enter stress", inStress(st))
	var cs alerts.ClusterStatus
	waitUntil(t, 15*time.Second, "the alert to fail against the absent MailHog", func() bool {
		cs = clusterStatus(t, nc, sc.Topology.Cluster)
		return cs.Outbox > 0 && cs.LastError != ""
	})
	if n := len(stressMails(t, ctx, st)); n != 0 {
		t.Fatalf("%d emails arrived while MailHog was away", n)
	}
	t.Logf("MailHog away at the entry: the alert waits in the outbox (%d), last error %q",
		cs.Outbox, cs.LastError)

	// The alert service dies with the alert still unsent; MailHog and the service come back.
	a.kill()
	hop.Up()
	back := time.Now()
	startAlertsChild(t, st.NATS.URL(), hop.Addr())
	if !st.Nodes[0].Server.Snapshot().InStress {
		t.Log("note: the episode ended before MailHog came back")
	}
	waitUntil(t, 15*time.Second, "the new alert service to send the alert it found in the outbox", func() bool {
		cs := clusterStatus(t, nc, sc.Topology.Cluster)
		return cs.Sent == 1 && cs.Outbox == 0
	})

	res := <-done
	mails := stressMails(t, ctx, st)
	checkReport(t, "MailHog away then back, alert service killed with the alert unsent", res, len(mails))
	if len(mails) != 1 {
		t.Fatalf("%d stress emails, want exactly 1", len(mails))
	}
	if mails[0].Before(back) {
		t.Errorf("the email is dated %v, before MailHog came back at %v", mails[0], back)
	}
	t.Logf("the alert arrived %v after MailHog came back", mails[0].Sub(back).Round(time.Millisecond))
}

func TestReplayWithAlertServiceKilledMidEpisode(t *testing.T) {
	longFaults(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, sc := faultStack(t, ctx, faultBurst)
	// No alert service at all when the episode begins.
	stopStackAlerts(st)

	done := startReplay(ctx, sc, st)
	waitUntil(t, 20*time.Second, "the node to enter stress", inStress(st))
	time.Sleep(time.Second) // the entry waits in the stream, unread
	back := time.Now()
	b := startAlertsChild(t, st.NATS.URL(), st.MailHog.SMTPAddr())
	waitUntil(t, 15*time.Second, "the alert once the service is back", func() bool {
		return len(stressMails(t, ctx, st)) > 0
	})
	t.Logf("alert service down at the entry: the alert arrived %v after it came back",
		time.Since(back).Round(time.Millisecond))

	// Killed again mid-episode, after it sent; its successor must not send a second one.
	if !st.Nodes[0].Server.Snapshot().InStress {
		t.Fatal("the episode ended before the second kill; the burst is too short for this row")
	}
	b.kill()
	startAlertsChild(t, st.NATS.URL(), st.MailHog.SMTPAddr())
	nc := statusConn(t, st)
	waitUntil(t, 10*time.Second, "the new alert service to answer with the alert already sent", func() bool {
		return clusterStatus(t, nc, sc.Topology.Cluster).Sent == 1
	})

	res := <-done
	mails := stressMails(t, ctx, st)
	checkReport(t, "alert service down at the entry, then killed after sending", res, len(mails))
	if len(mails) != 1 {
		t.Fatalf("%d stress emails, want exactly 1", len(mails))
	}
}

func TestReplayWithTheMTAKilledDuringTheBurst(t *testing.T) {
	longFaults(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The stack gives NATS, MailHog, the sink and the alert service; the scenario's node runs
	// in a child process instead of the stack's own (which serves another cluster, idle).
	st, _ := faultStack(t, ctx, quietRun)
	cat := scenarios.DefaultCatalog()
	sc, err := scenarios.Parse("faults.yaml", []byte(faultBurst), cat)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := mtaChildArgs{Scenario: dir + "/scenario.yaml", Addr: freeLoopbackAddr(t), Spool: dir + "/spool",
		Events: dir + "/events", Relay: st.Sink.Addr(), NATS: st.NATS.URL()}
	if err := os.WriteFile(args.Scenario, []byte(faultBurst), 0o600); err != nil {
		t.Fatal(err)
	}
	node := startMTAChild(t, args)
	rm, err := NewRemote(sc, RemoteOptions{MTAs: []string{args.Addr}, NATSURL: st.NATS.URL(),
		MailHogURL: st.MailHog.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()

	done := startReplay(ctx, sc, sinkTarget{rm, st})
	waitUntil(t, 20*time.Second, "the node to enter stress", func() bool {
		s, _ := rm.State(0)
		return s.InStress
	})
	time.Sleep(time.Second) // mid-burst: sessions in every phase of their transactions
	node.kill()
	killed := time.Now()
	time.Sleep(500 * time.Millisecond) // clients meet a closed port meanwhile
	startMTAChild(t, args)
	t.Logf("the MTA was SIGKILLed in stress and back on the same spool after %v",
		time.Since(killed).Round(time.Millisecond))

	res := <-done
	mails := stressMails(t, ctx, st)
	checkReport(t, "MTA killed during the burst", res, len(mails))
	if len(mails) != 1 {
		t.Fatalf("%d stress emails, want exactly 1: the episode goes on across the restart", len(mails))
	}
}

// sinkTarget is a running MTA whose next hop is the stack's sink, so that the replay can
// count what was lost.
type sinkTarget struct {
	*Remote
	st *Stack
}

func (s sinkTarget) Deliveries() (map[string]map[string]int, bool) {
	return deliveries(s.st.Sink.Messages()), true
}

// freeLoopbackAddr is a port nobody listens on now, for a process that restarts on it.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The scenario's MTA node as a child process (TestMTANodeChild), so that it can be SIGKILLed
// in the middle of a burst and restarted on its spool, as the crash test in mta does.

const mtaChildEnv = "MTASTRESS_MTA_CHILD" // mtaChildArgs as JSON

type mtaChildArgs struct {
	Scenario, Addr, Spool, Events, Relay, NATS string
}

func TestMTANodeChild(t *testing.T) {
	raw := os.Getenv(mtaChildEnv)
	if raw == "" {
		t.Skip("only runs as a child of TestReplayWithTheMTAKilledDuringTheBurst")
	}
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var a mtaChildArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		fail(err)
	}
	data, err := os.ReadFile(a.Scenario)
	if err != nil {
		fail(err)
	}
	sc, err := scenarios.Parse(a.Scenario, data, scenarios.DefaultCatalog())
	if err != nil {
		fail(err)
	}
	n := sc.Topology.Nodes[0]
	nc, err := nats.Connect(a.NATS, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		fail(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fail(err)
	}
	for _, d := range []string{a.Spool, a.Events} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			fail(err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	pub, err := events.NewPublisher(events.PublisherConfig{
		Node: events.Node{Node: n.Name, Cluster: sc.Topology.Cluster, Model: n.Model, Limit: n.ProcessLimit},
		JS:   js, SeqFile: a.Events + "/sequence", OutboxFile: a.Events + "/outbox", Logger: log,
	})
	if err != nil {
		fail(err)
	}
	// As the stack configures its nodes, but every client comes from 127.0.0.1 here.
	cfg := nodeConfig(sc, n, a.Spool, a.Relay)
	cfg.Events, cfg.Logger, cfg.ClientCap = pub, log, 100000
	srv, err := mta.New(cfg)
	if err != nil {
		fail(err)
	}
	l, err := net.Listen("tcp", a.Addr)
	if err != nil {
		fail(err)
	}
	fmt.Println("listening")
	srv.Serve(l) // until SIGKILL
}

// startMTAChild starts the node process and returns once it listens; the test's end kills it.
func startMTAChild(t *testing.T, a mtaChildArgs) *child {
	t.Helper()
	raw, _ := json.Marshal(a)
	return startChild(t, "TestMTANodeChild", mtaChildEnv+"="+string(raw), "listening")
}

// The alert service as a child process (this test binary, re-executed into
// TestAlertServiceChild), so that it can be killed for real: no deferred call, no clean stop.

const alertsChildEnv = "MTASTRESS_ALERTS_CHILD" // "<nats url> <relay host:port>"

func TestAlertServiceChild(t *testing.T) {
	arg := os.Getenv(alertsChildEnv)
	if arg == "" {
		t.Skip("only runs as a child of the fault tests")
	}
	url, relay, _ := strings.Cut(arg, " ")
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// As the stack configures its own (stack.go), on real time: these scenarios never skip.
	svc, err := alerts.New(alerts.Config{
		JS: js, Admin: []string{AdminAddress}, From: alertsFrom, Relay: relay,
		SettleWindow: replaySettle, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("running")
	err = svc.Run(context.Background()) // until killed
	fmt.Println("stopped", err)
}

// child is a process of this test binary running one of the *Child tests.
type child struct {
	cmd *exec.Cmd
	log *lockedLog
}

// startAlertsChild starts an alert service process; the test's end kills it.
func startAlertsChild(t *testing.T, natsURL, relay string) *child {
	t.Helper()
	return startChild(t, "TestAlertServiceChild", alertsChildEnv+"="+natsURL+" "+relay, "running")
}

// startChild runs the test named test in a new process with env added, and returns once the
// process prints ready. The test's end kills it.
func startChild(t *testing.T, test, env, ready string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	c := &child{cmd: cmd, log: &lockedLog{}}
	cmd.Stderr = c.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("%s (pid %d) said:\n%s", test, cmd.Process.Pid, c.log.String())
		}
	})
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if lines.Text() == ready {
			go io.Copy(io.Discard, out)
			return c
		}
	}
	t.Fatalf("%s did not start:\n%s", test, c.log.String())
	return nil
}

// kill ends the process with SIGKILL and reaps it; a second call does nothing.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// statusConn is a NATS connection for asking the alert service how its outbox stands.
func statusConn(t *testing.T, st *Stack) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(st.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// clusterStatus asks the alert service's status endpoint about one cluster; zero if it does
// not answer yet.
func clusterStatus(t *testing.T, nc *nats.Conn, cluster string) alerts.ClusterStatus {
	t.Helper()
	msg, err := nc.Request(alerts.StatusSubject, nil, 2*time.Second)
	if err != nil {
		return alerts.ClusterStatus{}
	}
	var st alerts.Status
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		t.Fatalf("status %q: %v", msg.Data, err)
	}
	for _, c := range st.Clusters {
		if c.Cluster == cluster {
			return c
		}
	}
	return alerts.ClusterStatus{}
}

// relayHop forwards TCP connections from a fixed loopback port to a target. Down closes the
// port (connections are refused, as when the server's process is gone) and cuts the
// connections through it; Up opens the same port again.
type relayHop struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startRelayHop(t *testing.T, target string) *relayHop {
	t.Helper()
	h := &relayHop{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.serve(ln)
	t.Cleanup(func() { h.Down(); h.wg.Wait() })
	return h
}

func (h *relayHop) Addr() string { return h.addr }

func (h *relayHop) Down() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln != nil {
		h.ln.Close()
		h.ln = nil
	}
	for c := range h.conns {
		c.Close()
	}
}

func (h *relayHop) Up() {
	h.t.Helper()
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		h.t.Fatalf("the relay's port %s could not be opened again: %v", h.addr, err)
	}
	h.serve(ln)
}

func (h *relayHop) serve(ln net.Listener) {
	h.mu.Lock()
	h.ln = ln
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				h.pipe(c)
			}()
		}
	}()
}

// pipe copies both ways between c and a new connection to the target until either side ends.
func (h *relayHop) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", h.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !h.track(c, up) {
		return
	}
	defer h.untrack(c, up)
	copied := make(chan struct{}, 2)
	for _, p := range [][2]net.Conn{{up, c}, {c, up}} {
		go func() {
			io.Copy(p[0], p[1])
			copied <- struct{}{}
		}()
	}
	<-copied
	c.Close()
	up.Close()
	<-copied
}

func (h *relayHop) track(cs ...net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		h.conns[c] = struct{}{}
	}
	return true
}

func (h *relayHop) untrack(cs ...net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cs {
		delete(h.conns, c)
	}
}
