package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func startNATS(t *testing.T, opts NATSOptions) *NATS {
	t.Helper()
	n, err := StartNATS(opts)
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	t.Cleanup(n.Stop)
	return n
}

// connectJS connects to n and returns a JetStream context; the connection
// is closed when the test ends.
func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

func createStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(testContext(t, 5*time.Second), jetstream.StreamConfig{
		Name:     "TESTENV",
		Subjects: []string{"testenv.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return s
}

func publish(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	ctx := testContext(t, 5*time.Second)
	for i := range n {
		if _, err := js.Publish(ctx, "testenv.msg", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

func checkStreamMessages(t *testing.T, s jetstream.Stream, n int) {
	t.Helper()
	ctx := testContext(t, 5*time.Second)
	for i := range n {
		msg, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("get message %d: %v", i+1, err)
		}
		if got, want := string(msg.Data), fmt.Sprintf("m%d", i); got != want {
			t.Errorf("message %d = %q, want %q", i+1, got, want)
		}
	}
}

func TestNATSStoresAndReturnsStreamMessages(t *testing.T) {
	n := startNATS(t, NATSOptions{StoreDir: t.TempDir()})
	js := connectJS(t, n.URL())
	s := createStream(t, js)
	publish(t, js, 3)
	checkStreamMessages(t, s, 3)
	if n.Server() == nil || !n.Server().JetStreamEnabled() {
		t.Error("Server() is not a running JetStream server")
	}
}

func TestNATSRestartKeepsPortAndStream(t *testing.T) {
	n := startNATS(t, NATSOptions{StoreDir: t.TempDir()})
	url := n.URL()
	js := connectJS(t, url)
	createStream(t, js)
	publish(t, js, 5)

	if err := n.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if n.URL() != url {
		t.Errorf("URL after restart = %s, want %s", n.URL(), url)
	}

	// The old connection reconnects on its own; a fresh one shows the
	// stream came back from the store.
	s, err := connectJS(t, url).Stream(testContext(t, 5*time.Second), "TESTENV")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	checkStreamMessages(t, s, 5)
	publish(t, js, 1)
}

func TestNATSRemovesTheStoreItCreated(t *testing.T) {
	n, err := StartNATS(NATSOptions{})
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	dir := n.StoreDir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store dir: %v", err)
	}
	n.Stop()
	n.Stop() // idempotent
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("store dir %s after Stop: %v, want it gone", dir, err)
	}
	if err := n.Restart(); !errors.Is(err, ErrStopped) {
		t.Errorf("Restart after Stop = %v, want ErrStopped", err)
	}
}

func TestNATSKeepsAStoreItWasGiven(t *testing.T) {
	dir := t.TempDir()
	n := startNATS(t, NATSOptions{StoreDir: dir})
	n.Stop()
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("given store dir after Stop: %v", err)
	}
}

func TestNATSReportsAPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	start := time.Now()
	n, err := StartNATS(NATSOptions{StoreDir: t.TempDir(), Port: port})
	if err == nil {
		n.Stop()
		t.Fatalf("StartNATS on a taken port %d succeeded", port)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing took %s, want it at once", d)
	}
	t.Logf("error: %v", err)
}
