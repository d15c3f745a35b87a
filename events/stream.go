package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Streams and their subjects.
const (
	StreamEvents = "MTA_EVENTS" // stress transitions: what alerting stands on
	StreamLoad   = "MTA_LOAD"   // load samples: high volume, short-lived

	SubjectAllStress = "mta.*.*.stress"
	SubjectAllLoad   = "mta.*.*.load"
)

// Retention: transitions are kept a week plus slack, so the weekly rule can be rebuilt from the
// stream; samples only a day, since the alert service keeps what it needs of them.
const (
	EventsMaxAge = 8 * 24 * time.Hour
	LoadMaxAge   = 24 * time.Hour
)

// Duplicate windows: how long a stream remembers a Nats-Msg-Id to drop a second copy.
//
// A copy is only made when an attempt was stored but its ack was lost, and the publisher, which
// retries forever, sends the same id again. While the MTA runs, that retry follows within
// seconds; after a crash it follows the restart, so the window must outlast an MTA being down.
// No window covers "forever": it is the first line, and consumers skip sequences of a source
// they have applied (see docs/events.md).
const (
	// EventsDuplicateWindow covers a node down for a day. Transitions are a few a day per node,
	// so the ids the server keeps for it cost next to nothing.
	EventsDuplicateWindow = 24 * time.Hour
	// LoadDuplicateWindow is short: a node sends a sample a second, and the server keeps every
	// id in the window in memory. A duplicate sample is harmless to the rules anyway.
	LoadDuplicateWindow = 10 * time.Minute
	// DuplicateWindow is the load stream's window.
	//
	// Deprecated: use LoadDuplicateWindow or EventsDuplicateWindow.
	DuplicateWindow = LoadDuplicateWindow
)

// Replicas of the streams: one on a single server, three on a cluster (a three-replica stream
// stays writable with one server of three gone).
const (
	ReplicasSingle  = 1
	ReplicasCluster = 3
	// maxReplicas is JetStream's own limit.
	maxReplicas = 5
)

var ErrStreamSetup = errors.New("events: stream setup failed")

// StreamConfigs returns the configuration of both streams. replicas below 1 means 1.
func StreamConfigs(replicas int) []jetstream.StreamConfig {
	replicas = max(replicas, ReplicasSingle)
	return []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "mtastress stress transitions",
			Subjects:    []string{SubjectAllStress},
			Storage:     jetstream.FileStorage,
			MaxAge:      EventsMaxAge,
			Duplicates:  EventsDuplicateWindow,
			Replicas:    replicas,
		},
		{
			Name:        StreamLoad,
			Description: "mtastress load samples",
			Subjects:    []string{SubjectAllLoad},
			Storage:     jetstream.FileStorage,
			MaxAge:      LoadMaxAge,
			Duplicates:  LoadDuplicateWindow,
			Replicas:    replicas,
		},
	}
}

// EnsureStreams creates both streams, or updates them to this configuration. It is idempotent,
// so every MTA node and alert service may call it at start. Raising replicas on a cluster
// scales an existing stream up; a single server refuses more than one replica.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas > maxReplicas {
		return fmt.Errorf("%w: %d replicas, JetStream allows at most %d", ErrStreamSetup, replicas, maxReplicas)
	}
	for _, cfg := range StreamConfigs(replicas) {
		// A stream that is already as wanted is left alone: every node and service calls this
		// at start, and an update rewrites the stream's config on the server while consumers
		// of it are being created (nats-server v2.15.3 reads that config unlocked there; the
		// race detector sees it when an alert service starts beside a publisher).
		if s, err := js.Stream(ctx, cfg.Name); err == nil && sameStream(s.CachedInfo().Config, cfg) {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrStreamSetup, cfg.Name, err)
		}
	}
	return nil
}

// sameStream reports whether have already holds every setting of want that EnsureStreams sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Storage == want.Storage && have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates && have.Replicas == want.Replicas
}

// CurrentReplicas is the most replicas either stream has, or 1 when neither exists yet. A tool
// that joins an operator's NATS (a replay with --nats) passes it to EnsureStreams, so that it
// never rescales the operator's streams.
func CurrentReplicas(ctx context.Context, js jetstream.JetStream) (int, error) {
	n := ReplicasSingle
	for _, name := range []string{StreamEvents, StreamLoad} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrStreamSetup, name, err)
		}
		n = max(n, s.CachedInfo().Config.Replicas)
	}
	return n, nil
}
