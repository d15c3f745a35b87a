package events

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/testenv"
)

func startJetStream(t testing.TB) (*testenv.NATS, jetstream.JetStream) {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	nc, err := nats.Connect(ns.URL(), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond))
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
	if err := EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	// A second call must be harmless: every node and alert service calls it at start.
	if err := EnsureStreams(ctx, js, 1); err != nil {
		t.Fatalf("second EnsureStreams: %v", err)
	}
	return ns, js
}

// readAll fetches every message of a stream, decoded, waiting until want have arrived.
func readAll(t testing.TB, js jetstream.JetStream, stream string, want int) []*Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int(info.State.Msgs) >= want {
			var out []*Event
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				m, err := s.GetMsg(ctx, seq)
				if err != nil {
					t.Fatal(err)
				}
				ev, err := Decode(m.Data)
				if err != nil {
					t.Fatalf("stored event does not decode: %v", err)
				}
				if m.Header.Get(jetstream.MsgIDHeader) != ev.ID {
					t.Fatalf("Nats-Msg-Id %q, event id %q", m.Header.Get(jetstream.MsgIDHeader), ev.ID)
				}
				out = append(out, ev)
			}
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s has %d messages, want %d", stream, info.State.Msgs, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestPublisherSendsTransitionsInOrderWithSequences(t *testing.T) {
	_, js := startJetStream(t)
	dir := t.TempDir()
	p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js, SeqFile: filepath.Join(dir, "seq")})
	if err != nil {
		t.Fatal(err)
	}
	entered := time.Now().UTC()
	ep := EpisodeID("edge", "edge-1", entered)
	p.Entered(StressTransition{Episode: ep, Entered: entered})
	p.Sample(LoadSample{Active: 10, Stress: true, Episode: ep})
	exited := entered.Add(5 * time.Second)
	p.Exited(StressTransition{Episode: ep, Entered: entered, Exited: &exited})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	got := readAll(t, js, StreamEvents, 2)
	if len(got) != 2 || got[0].Type != TypeStressEntered || got[1].Type != TypeStressExited {
		t.Fatalf("transitions: %+v", got)
	}
	if !got[0].Time.Equal(entered) || !got[1].Time.Equal(exited) {
		t.Fatalf("times %v %v, want the entry and exit times", got[0].Time, got[1].Time)
	}
	if got[0].Seq >= got[1].Seq {
		t.Fatalf("sequences not increasing: %d then %d", got[0].Seq, got[1].Seq)
	}
	samples := readAll(t, js, StreamLoad, 1)
	if samples[0].Sample.Limit != 10 || samples[0].Sample.Node.Node != "edge-1" {
		t.Fatalf("sample does not name its node: %+v", samples[0].Sample)
	}

	// A restart continues the sequence past everything used before.
	p2, err := NewPublisher(PublisherConfig{Node: testNode, JS: js, SeqFile: filepath.Join(dir, "seq")})
	if err != nil {
		t.Fatal(err)
	}
	p2.Entered(StressTransition{Episode: ep + "1", Entered: exited.Add(time.Minute)})
	if err := p2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := readAll(t, js, StreamEvents, 3)
	if again[2].Seq <= got[1].Seq {
		t.Fatalf("sequence after restart %d, not above %d", again[2].Seq, got[1].Seq)
	}
}

func TestPublisherNeverBlocksAndRetriesWhileNATSIsAway(t *testing.T) {
	ns, js := startJetStream(t)
	p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js, RetryDelay: 50 * time.Millisecond,
		PublishTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Shut the server down under testenv's feet; Restart brings it back on the same port and store.
	ns.Server().Shutdown()
	ns.Server().WaitForShutdown()

	// With NATS away, queuing must return at once, for samples and transitions alike.
	start := time.Now()
	entered := time.Now().UTC()
	p.Entered(StressTransition{Episode: "edge.edge-1.1", Entered: entered})
	for i := range 100 {
		p.Sample(LoadSample{Active: i})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("queuing took %v with NATS away", d)
	}
	if st := p.Stats(); st.Coalesced < 90 {
		t.Fatalf("coalesced %d samples, want most of 100", st.Coalesced)
	}

	// Wait until the publisher has seen attempts fail, so the test proves a retry.
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Failures == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt counted while NATS was away")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ns.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close after NATS came back: %v", err)
	}
	got := readAll(t, js, StreamEvents, 1)
	if len(got) != 1 || got[0].Transition.Episode != "edge.edge-1.1" {
		t.Fatalf("after restart: %+v", got)
	}
}

func TestCloseTwice(t *testing.T) {
	_, js := startJetStream(t)
	p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); !errors.Is(err, ErrPublisherClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

func TestNewPublisherRefusesBadNames(t *testing.T) {
	_, err := NewPublisher(PublisherConfig{Node: Node{Node: "a.b", Cluster: "edge", Limit: 1}})
	if !errors.Is(err, ErrBadName) {
		t.Fatalf("got %v", err)
	}
}

func TestOutboxKeepsTransitionsAcrossARestartWhileNATSIsAway(t *testing.T) {
	ns, js := startJetStream(t)
	dir := t.TempDir()
	cfg := PublisherConfig{Node: testNode, JS: js, SeqFile: filepath.Join(dir, "seq"),
		OutboxFile: filepath.Join(dir, "outbox"), RetryDelay: 50 * time.Millisecond,
		PublishTimeout: 100 * time.Millisecond}
	ns.Server().Shutdown()
	ns.Server().WaitForShutdown()

	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entered := time.Now().UTC()
	p.Entered(StressTransition{Episode: "edge.edge-1.7", Entered: entered})
	// The MTA stops before NATS is back: Close gives up and the transition stays in the outbox.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err == nil {
		t.Fatal("Close reported everything sent while NATS was down")
	}
	// A crash in the middle of an append leaves a torn line; it must not stop the rest.
	f, err := os.OpenFile(cfg.OutboxFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("no outbox file: %v", err)
	}
	f.WriteString(`{"specversion":"1.0","id":"torn`)
	f.Close()

	if err := ns.Restart(); err != nil {
		t.Fatal(err)
	}
	p2, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := p2.Stats(); st.Pending != 1 {
		t.Fatalf("%d transitions recovered from the outbox, want 1", st.Pending)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel2()
	if err := p2.Close(ctx2); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, js, StreamEvents, 1)
	if len(got) != 1 || got[0].Transition.Episode != "edge.edge-1.7" || !got[0].Time.Equal(entered) {
		t.Fatalf("after restart: %+v", got)
	}
	if b, _ := os.ReadFile(cfg.OutboxFile); len(b) != 0 {
		t.Fatalf("outbox not emptied after the ack: %q", b)
	}
}

// TestAFreshPublisherStartsAboveEveryEarlierSequence: without a sequence file (a wiped spool, a
// new replay against a NATS that keeps old events) a publisher must not start again at 1, or
// consumers that skip what they have seen would skip its events.
func TestAFreshPublisherStartsAboveEveryEarlierSequence(t *testing.T) {
	_, js := startJetStream(t)
	var last uint64
	for run := range 2 {
		p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js})
		if err != nil {
			t.Fatal(err)
		}
		p.Entered(StressTransition{Episode: "edge.edge-1.1", Entered: time.Now().UTC()})
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, js, StreamEvents, run+1)
		seq := got[run].Seq
		if seq <= last {
			t.Fatalf("run %d sent sequence %d, not above the earlier %d", run, seq, last)
		}
		last = seq
	}
}
