package events

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/testenv"
)

func TestStreamConfigsKeepTheWeekAndCoverRetries(t *testing.T) {
	for _, replicas := range []int{0, 1, 3} {
		cfgs := StreamConfigs(replicas)
		if len(cfgs) != 2 || cfgs[0].Name != StreamEvents || cfgs[1].Name != StreamLoad {
			t.Fatalf("streams %+v", cfgs)
		}
		for _, c := range cfgs {
			if want := max(replicas, 1); c.Replicas != want {
				t.Errorf("%s with %d replicas asked: %d, want %d", c.Name, replicas, c.Replicas, want)
			}
			// JetStream refuses a duplicate window longer than the stream keeps messages.
			if c.Duplicates <= 0 || c.Duplicates > c.MaxAge {
				t.Errorf("%s: duplicate window %s outside (0, MaxAge %s]", c.Name, c.Duplicates, c.MaxAge)
			}
			if c.Storage != jetstream.FileStorage {
				t.Errorf("%s is not on file storage", c.Name)
			}
		}
		if ev := cfgs[0]; ev.MaxAge < 8*24*time.Hour || ev.Duplicates < 24*time.Hour {
			t.Errorf("%s keeps %s with a %s window; want at least 8 days and a day", ev.Name, ev.MaxAge, ev.Duplicates)
		}
	}
}

func TestEnsureStreamsRefusesMoreReplicasThanJetStreamAllows(t *testing.T) {
	err := EnsureStreams(context.Background(), nil, 6)
	if !errors.Is(err, ErrStreamSetup) || !strings.Contains(err.Error(), "at most 5") {
		t.Fatalf("EnsureStreams(6) = %v", err)
	}
}

// TestEnsureStreamsScalesUpToThreeReplicasOnACluster: a stream made by a first node with one
// replica becomes three when the configuration says so, and setting it up again changes nothing.
func TestEnsureStreamsScalesUpToThreeReplicasOnACluster(t *testing.T) {
	c, err := testenv.StartNATSCluster(testenv.NATSClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := CurrentReplicas(ctx, js); err != nil || n != ReplicasSingle {
		t.Fatalf("CurrentReplicas with no streams = %d, %v; want 1", n, err)
	}
	for _, replicas := range []int{ReplicasSingle, ReplicasCluster, ReplicasCluster} {
		if err := EnsureStreams(ctx, js, replicas); err != nil {
			t.Fatalf("EnsureStreams(%d): %v", replicas, err)
		}
	}
	if n, err := CurrentReplicas(ctx, js); err != nil || n != ReplicasCluster {
		t.Errorf("CurrentReplicas = %d, %v; want %d", n, err, ReplicasCluster)
	}
	for _, name := range []string{StreamEvents, StreamLoad} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != ReplicasCluster {
			t.Errorf("%s has %d replicas, want %d", name, info.Config.Replicas, ReplicasCluster)
		}
	}
}
