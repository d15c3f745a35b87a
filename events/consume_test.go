package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer is a log destination the consumer's goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDecodeMsgTerminatesWhatItCannotRead feeds a consumer garbage, an event of a future
// version and a good event: the first two are logged with their stream sequence and never come
// again, the good one is handed on.
func TestDecodeMsgTerminatesWhatItCannotRead(t *testing.T) {
	_, js := startJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	subject := StressSubject("edge", "edge-1")
	at := time.Now().UTC()
	good, err := Encode(TypeStressEntered, 3, at, testNode,
		&StressTransition{Node: testNode, Episode: "edge.edge-1.1", Entered: at})
	if err != nil {
		t.Fatal(err)
	}
	future := *good
	future.Type = "io.mtastress.stress.entered.v2"
	for _, body := range [][]byte{[]byte("{not json"), mustJSON(t, &future), mustJSON(t, good)} {
		if _, err := js.Publish(ctx, subject, body); err != nil {
			t.Fatal(err)
		}
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	decoded := make(chan *Event, 10)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if ev, ok := DecodeMsg(m, log); ok {
			decoded <- ev
			m.Ack()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	select {
	case ev := <-decoded:
		if ev.ID != good.ID {
			t.Fatalf("decoded %s, want %s", ev.ID, good.ID)
		}
	case <-ctx.Done():
		t.Fatal("the good event did not come through")
	}
	// Past the ack wait, nothing may come again.
	time.Sleep(time.Second)
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.NumAckPending != 0 {
		t.Errorf("redelivered %d, pending %d: the bad events were not terminated",
			info.NumRedelivered, info.NumAckPending)
	}
	out := logs.String()
	for _, want := range []string{"malformed event terminated", "stream_seq=1",
		"unknown type or version", "stream_seq=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not say %q:\n%s", want, out)
		}
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
