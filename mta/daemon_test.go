package mta

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/testenv"
)

// daemonFile writes a node's configuration file relaying to relay, with extra lines appended.
func daemonFile(t *testing.T, dir, relay, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "mta.yaml")
	data := fmt.Sprintf(`node: edge-1
cluster: edge
model: T10
hostname: mx.example.test
listen: 127.0.0.1:0
listen_exempt: 127.0.0.1:0
metrics: 127.0.0.1:0
spool: %s
relay: %s
retry_min: 50ms
retry_max: 200ms
shutdown_timeout: 5s
%s`, filepath.Join(dir, "spool"), relay, extra)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startDaemon(t *testing.T, path string) *Daemon {
	t.Helper()
	fc, err := LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := StartDaemon(fc, 10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d
}

func scrape(t *testing.T, d *Daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.metricsLn.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func TestDaemon(t *testing.T) {
	t.Run("it serves SMTP and metrics, and a reload changes the recipient policy", func(t *testing.T) {
		sink := startSink(t)
		dir := t.TempDir()
		path := daemonFile(t, dir, sink.Addr(), "domains: [example.test]\n")
		d := startDaemon(t, path)

		c := greeted(t, d.smtp[0].Addr().String())
		expect(t, "message", c.sendMessage("a@example.net", []string{"user1@example.test"}, message("m-1")), "250 ")
		expect(t, "MAIL", c.cmd("MAIL FROM:<a@example.net>"), "250 ")
		expect(t, "before the reload", c.cmd("RCPT TO:<x@example.org>"), "554 5.7.1 ")
		eventually(t, 5*time.Second, "delivery", func() bool { return headerCount(sink, "X-Mtastress-Id: m-1") == 1 })
		if m := scrape(t, d); !strings.Contains(m, `mtastress_mta_process_limit{cluster="edge",node="edge-1"} 10`) {
			t.Fatalf("no process limit in /metrics:\n%s", m)
		}

		daemonFile(t, dir, sink.Addr(), "domains: [example.test, example.org]\ncooldown: 5s\ncommand_timeout: 400ms\n")
		next, err := LoadConfigFile(path)
		if err != nil {
			t.Fatal(err)
		}
		restart, err := d.Reload(next)
		if err != nil || !slices.Equal(restart, []string{"cooldown"}) {
			t.Fatalf("reload: restart %v, err %v; want [cooldown]", restart, err)
		}
		expect(t, "after the reload", c.cmd("RCPT TO:<x@example.org>"), "250 ")
		// The new command timeout holds for the next session, not this one.
		next2 := greeted(t, d.smtp[0].Addr().String())
		expect(t, "the next session, idle", next2.reply(5*time.Second), "421 4.4.")
		expect(t, "the older session", c.cmd("RSET"), "250 ")
	})

	t.Run("reloads during a busy run lose nothing", func(t *testing.T) {
		sink := startSink(t)
		dir := t.TempDir()
		// All clients are 127.0.0.1: lift the per-client cap, which closing sessions would hit.
		const fixed = "client_cap: 100\n"
		path := daemonFile(t, dir, sink.Addr(), fixed+"domains: [example.test]\n")
		d := startDaemon(t, path)
		addr := d.smtp[0].Addr().String()

		const clients, each = 4, 10
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if err := sendSized(addr, fmt.Sprintf("r%d-%d", c, i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		// Reload back and forth between two recipient policies while the mail flows.
		for i := 0; i < 20; i++ {
			daemonFile(t, dir, sink.Addr(), fixed+fmt.Sprintf("domains: [example.test, d%d.example]\n", i%2))
			next, err := LoadConfigFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Reload(next); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		eventually(t, 10*time.Second, "every message delivered", func() bool {
			return len(sink.Messages()) == clients*each && d.Server().Snapshot().QueueDepth == 0
		})
	})

	t.Run("with NATS it sets up the streams and publishes load samples", func(t *testing.T) {
		ns, err := testenv.StartNATS(testenv.NATSOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns.Stop)
		dir := t.TempDir()
		path := daemonFile(t, dir, "127.0.0.1:1", "sample_interval: 50ms\nnats: {urls: ["+ns.URL()+"]}\n")
		d := startDaemon(t, path)

		nc, err := nats.Connect(ns.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		eventually(t, 10*time.Second, "load samples in MTA_LOAD", func() bool {
			st, err := js.Stream(context.Background(), events.StreamLoad)
			if err != nil {
				return false
			}
			info, err := st.Info(context.Background())
			return err == nil && info.State.Msgs > 0
		})
		if m := scrape(t, d); !strings.Contains(m, "mtastress_events_published_total") {
			t.Fatalf("no publisher metrics in /metrics:\n%s", m)
		}
		if _, err := os.Stat(filepath.Join(dir, "spool.events", "sequence")); err != nil {
			t.Fatalf("the event state is not beside the spool: %v", err)
		}
	})
}
