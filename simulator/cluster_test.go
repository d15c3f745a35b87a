package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/events"
)

// TestReplayOnAClusterSurvivesAKilledServer runs the stack on three NATS servers with
// three-replica streams and kills the server leading MTA_EVENTS as the nodes enter stress:
// the publishers and the alert service fail over, the run passes, and every episode is on the
// stream once, with its alert.
func TestReplayOnAClusterSurvivesAKilledServer(t *testing.T) {
	if testing.Short() {
		t.Skip("replay takes about 15 s")
	}
	sc, cat := faultScenario(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := StartStack(ctx, sc, StackOptions{Catalog: cat, NATSCluster: true, Logger: faultLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stream := eventsStream(ctx, t, st.NATSURL())
	if info := streamInfo(ctx, t, stream); info.Config.Replicas != 3 {
		t.Fatalf("%s has %d replicas on the cluster, want 3", events.StreamEvents, info.Config.Replicas)
	}

	done := replayInBackground(ctx, sc, st)
	waitFor(t, 20*time.Second, "a node in stress", func() bool {
		return anyNode(st, func(s NodeState) bool { return s.InStress })
	})
	leader := streamInfo(ctx, t, stream).Cluster.Leader
	killed := -1
	for i := range 3 {
		if st.Cluster.ServerName(i) == leader {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("stream leader %q is not a server of the cluster", leader)
	}
	if err := st.Cluster.Kill(killed); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, the leader of %s", leader, events.StreamEvents)

	rep := checkPassed(t, <-done)
	checkOncePerEpisode(t, rep, streamTransitions(t, st.NATSURL()))
	checkStressAlerts(t, st, rep)
	if now := streamInfo(ctx, t, stream).Cluster.Leader; now == leader {
		t.Errorf("the stream is still led by the killed server %s", leader)
	}
}

func eventsStream(ctx context.Context, t *testing.T, url string) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// streamInfo asks again while the cluster elects a new leader.
func streamInfo(ctx context.Context, t *testing.T, s jetstream.Stream) *jetstream.StreamInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := s.Info(actx)
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream info with a leader within 15 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
