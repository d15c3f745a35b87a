package events

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublisherQueue is what the MTA pays per event: it calls the publisher with its slot
// lock held, so queuing (a JSON encode and a slice append, no I/O) must stay in microseconds,
// NATS or not. Measured here: about 4 µs a sample, 9 µs a transition.
func BenchmarkPublisherQueue(b *testing.B) {
	_, js := startJetStream(b)
	p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// What is still queued is not the point here.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = p.Close(ctx)
	})
	b.Run("sample", func(b *testing.B) {
		for b.Loop() {
			p.Sample(LoadSample{Active: 5, Waiting: 1})
		}
	})
	b.Run("transition", func(b *testing.B) {
		at := time.Now().UTC()
		for b.Loop() {
			p.Entered(StressTransition{Episode: "edge.edge-1.1", Entered: at})
		}
	})
}

// BenchmarkTransitionsToConsumer is the rate of stress transitions from Entered, through the
// fsynced outbox and JetStream, to a consumer that decodes them. Three fsyncs each bound it
// (about 180/s on this disk): ample for events that come a few a day per node.
func BenchmarkTransitionsToConsumer(b *testing.B) {
	_, js := startJetStream(b)
	dir := b.TempDir()
	p, err := NewPublisher(PublisherConfig{Node: testNode, JS: js,
		SeqFile: filepath.Join(dir, "seq"), OutboxFile: filepath.Join(dir, "outbox")})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan struct{}, 1024)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if _, err := Decode(m.Data()); err == nil {
			got <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	at := time.Now().UTC()
	b.ResetTimer()
	for range b.N {
		p.Entered(StressTransition{Episode: "edge.edge-1.1", Entered: at})
	}
	for range b.N {
		select {
		case <-got:
		case <-ctx.Done():
			b.Fatal("transitions did not all arrive")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.StopTimer()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
