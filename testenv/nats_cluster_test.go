package testenv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func startCluster3(t *testing.T, opts NATSClusterOptions) *NATSCluster {
	t.Helper()
	start := time.Now()
	c, err := StartNATSCluster(opts)
	if err != nil {
		t.Fatalf("StartNATSCluster: %v", err)
	}
	t.Logf("cluster ready in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(c.Stop)
	return c
}

func createReplicatedStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(testContext(t, 10*time.Second), jetstream.StreamConfig{
		Name:     "TESTENV",
		Subjects: []string{"testenv.>"},
		Storage:  jetstream.FileStorage,
		Replicas: ClusterSize,
	})
	if err != nil {
		t.Fatalf("create a stream with %d replicas: %v", ClusterSize, err)
	}
	return s
}

// publishEventually publishes message i, retrying while the cluster elects a
// new stream leader.
func publishEventually(t *testing.T, js jetstream.JetStream, i int) {
	t.Helper()
	eventually(t, 15*time.Second, func() (bool, string) {
		ctx := testContext(t, time.Second)
		_, err := js.Publish(ctx, "testenv.msg", fmt.Appendf(nil, "m%d", i),
			jetstream.WithMsgID(fmt.Sprint(i)))
		return err == nil, fmt.Sprintf("publish %d: %v", i, err)
	})
}

// leaderIndex is the index of the server leading the stream.
func leaderIndex(t *testing.T, c *NATSCluster, s jetstream.Stream) int {
	t.Helper()
	info, err := s.Info(testContext(t, 5*time.Second))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	for i := range ClusterSize {
		if c.ServerName(i) == info.Cluster.Leader {
			return i
		}
	}
	t.Fatalf("stream leader %q is none of the cluster's servers", info.Cluster.Leader)
	return -1
}

func TestNATSClusterKeepsAReplicatedStreamThroughAServerKill(t *testing.T) {
	c := startCluster3(t, NATSClusterOptions{})
	urls := c.URLs()
	if len(urls) != ClusterSize {
		t.Fatalf("URLs() = %v, want %d", urls, ClusterSize)
	}
	js := connectJS(t, strings.Join(urls, ","))
	s := createReplicatedStream(t, js)
	publish(t, js, 3)

	// Kill the stream's leader: the hardest server to lose.
	leader := leaderIndex(t, c, s)
	if err := c.Kill(leader); err != nil {
		t.Fatalf("Kill(%d): %v", leader, err)
	}
	if c.Server(leader) != nil {
		t.Errorf("Server(%d) after Kill is not nil", leader)
	}
	if err := c.Kill(leader); err != nil {
		t.Errorf("a second Kill(%d) = %v, want nothing to happen", leader, err)
	}
	for i := 3; i < 6; i++ {
		publishEventually(t, js, i)
	}
	checkStreamMessages(t, s, 6)

	// Back on the same ports and store, it rejoins as the same peer.
	if err := c.Restart(leader); err != nil {
		t.Fatalf("Restart(%d): %v", leader, err)
	}
	if got := c.URLs(); strings.Join(got, ",") != strings.Join(urls, ",") {
		t.Errorf("URLs after restart %v, want %v", got, urls)
	}
	if srv := c.Server(leader); srv == nil || !srv.JetStreamIsCurrent() {
		t.Errorf("server %d is not a current JetStream peer after Restart", leader)
	}
	publishEventually(t, js, 6)
	checkStreamMessages(t, s, 7)
}

func TestNATSClusterStopRemovesItsStoresAndRefusesLaterCalls(t *testing.T) {
	c := startCluster3(t, NATSClusterOptions{Name: "edge"})
	if got := c.ServerName(2); got != "edge-2" {
		t.Errorf("ServerName(2) = %q, want edge-2", got)
	}
	if err := c.Kill(ClusterSize); !errors.Is(err, ErrBadIndex) {
		t.Errorf("Kill(%d) = %v, want ErrBadIndex", ClusterSize, err)
	}
	var dirs []string
	for i := range ClusterSize {
		dirs = append(dirs, c.members[i].storeDir)
	}
	c.Stop()
	c.Stop() // idempotent
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("store %s after Stop: %v, want it gone", d, err)
		}
	}
	if err := c.Restart(0); !errors.Is(err, ErrStopped) {
		t.Errorf("Restart after Stop = %v, want ErrStopped", err)
	}
}
