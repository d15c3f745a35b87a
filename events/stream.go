package events

import (
	"context"
	"errors"
	"fmt"
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
	// DuplicateWindow is the stream's de-duplication window on Nats-Msg-Id. It is only a first
	// line: consumers also skip sequences they have applied.
	DuplicateWindow = 10 * time.Minute
)

var ErrStreamSetup = errors.New("events: stream setup failed")

// StreamConfigs returns the configuration of both streams.
func StreamConfigs(replicas int) []jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "mtastress stress transitions",
			Subjects:    []string{SubjectAllStress},
			Storage:     jetstream.FileStorage,
			MaxAge:      EventsMaxAge,
			Duplicates:  DuplicateWindow,
			Replicas:    replicas,
		},
		{
			Name:        StreamLoad,
			Description: "mtastress load samples",
			Subjects:    []string{SubjectAllLoad},
			Storage:     jetstream.FileStorage,
			MaxAge:      LoadMaxAge,
			Duplicates:  DuplicateWindow,
			Replicas:    replicas,
		},
	}
}

// EnsureStreams creates both streams, or updates them to this configuration. It is idempotent,
// so every MTA node and alert service may call it at start.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range StreamConfigs(replicas) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrStreamSetup, cfg.Name, err)
		}
	}
	return nil
}
