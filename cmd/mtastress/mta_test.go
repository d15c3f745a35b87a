package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/testenv"
)

// mtaFile writes a node's configuration on 127.0.0.1:0 ports, relaying to relay.
func mtaFile(t *testing.T, relay, extra string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mta.yaml")
	data := fmt.Sprintf(`node: edge-1
cluster: edge
model: T10
hostname: mx.example.test
listen: 127.0.0.1:0
metrics: 127.0.0.1:0
spool: %s
relay: %s
domains: [example.test]
retry_min: 50ms
retry_max: 200ms
shutdown_timeout: 5s
%s`, filepath.Join(dir, "spool"), relay, extra)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// execute runs the CLI in-process and returns its error and what it wrote.
func execute(t *testing.T, args ...string) (error, string) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return err, out.String()
}

func TestMTACheck(t *testing.T) {
	t.Run("a valid file passes with exit 0", func(t *testing.T) {
		path := mtaFile(t, "127.0.0.1:2525", "")
		err, out := execute(t, "mta", "--check", "--config", path)
		if exitCode(err) != exitOK || !strings.Contains(out, "ok (node edge-1, cluster edge, model T10, limit 10)") {
			t.Fatalf("exit %d, output %q", exitCode(err), out)
		}
	})
	t.Run("the example file in mta/testdata passes when the files it names exist", func(t *testing.T) {
		example, err := os.ReadFile("../../mta/testdata/mta.example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		ca := filepath.Join(dir, "nats-ca.pem")
		os.WriteFile(ca, []byte("not read by --check\n"), 0o600)
		path := filepath.Join(dir, "mta.yaml")
		os.WriteFile(path, bytes.ReplaceAll(example, []byte("/etc/mtastress/nats-ca.pem"), []byte(ca)), 0o600)
		if err, _ := execute(t, "mta", "--check", "--config", path); err != nil {
			t.Fatal(err)
		}
		// As it stands, on a machine without the CA file, --check names it.
		err, _ = execute(t, "mta", "--check", "--config", "../../mta/testdata/mta.example.yaml")
		if exitCode(err) != exitBadInput || !strings.Contains(err.Error(), "nats.tls.ca_file") {
			t.Fatalf("the example without its CA file: %v", err)
		}
	})
	cases := []struct{ name, extra, want string }{
		{"a bad duration fails with exit 2, file, line, column and key", "cooldown: 30\n",
			`mta.yaml:13:11: cooldown: "30" is not a Go duration`},
		{"an unknown model fails with exit 2 and lists the known ones", "",
			`mta.yaml:3:8: model: unknown model "T7"; the catalog has T10, T25`},
		{"a port out of range fails", "listen_exempt: [127.0.0.1:99999]\n",
			`mta.yaml:13:17: listen_exempt: "127.0.0.1:99999" is not host:port`},
		{"proxy_from without a PROXY listener fails", "proxy_from: [10.0.0.0/8]\n",
			`mta.yaml:13:13: proxy_from: has no listener to apply to`},
		{"a NATS creds file that is not there fails", "nats: {urls: [nats://127.0.0.1:4222], creds_file: /nonexistent/x.creds}\n",
			`mta.yaml:13:51: nats.creds_file: stat /nonexistent/x.creds: no such file or directory`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := mtaFile(t, "127.0.0.1:2525", tc.extra)
			if tc.extra == "" {
				data, _ := os.ReadFile(path)
				os.WriteFile(path, bytes.Replace(data, []byte("model: T10"), []byte("model: T7"), 1), 0o600)
			}
			err, _ := execute(t, "mta", "--check", "--config", path)
			if exitCode(err) != exitBadInput || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("exit %d, error %v; want %d and %q", exitCode(err), err, exitBadInput, tc.want)
			}
		})
	}
	t.Run("a missing --config is bad input", func(t *testing.T) {
		if err, _ := execute(t, "mta"); exitCode(err) != exitBadInput {
			t.Fatalf("exit %d, error %v", exitCode(err), err)
		}
	})
}

// syncBuffer is the daemon's stderr, read by the test while the daemon writes.
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

// waitLog polls the log for a match of re and returns its first group.
func waitLog(t *testing.T, log *syncBuffer, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(log.String()); m != nil {
			return m[len(m)-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line matching %s in:\n%s", re, log)
	return ""
}

// startMTACommand runs `mtastress mta --config path` in-process until the returned channel
// gives its error.
func startMTACommand(t *testing.T, ctx context.Context, path string) (*syncBuffer, <-chan error) {
	t.Helper()
	root := newRoot()
	log := &syncBuffer{}
	root.SetErr(log)
	root.SetOut(io.Discard)
	root.SetArgs([]string{"mta", "--config", path})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", log)
		}
	})
	return log, done
}

func waitDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("mta returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mta did not stop")
	}
}

func TestMTADaemon(t *testing.T) {
	t.Run("it serves SMTP and metrics, reloads on SIGHUP and stops when its context ends", func(t *testing.T) {
		sink, err := testenv.StartSink(testenv.SinkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Stop()
		path := mtaFile(t, sink.Addr(), "")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log, done := startMTACommand(t, ctx, path)
		smtpAddr := waitLog(t, log, `msg=listening .*kind=smtp addr=(127\.0\.0\.1:\d+)`)
		metricsAddr := waitLog(t, log, `msg=listening .*kind=metrics addr=(127\.0\.0\.1:\d+)`)

		msg := "Subject: hello\r\nX-Test-Id: cmd-1\r\n\r\nHello.\r\n"
		c, err := smtp.Dial(smtpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail("a@example.net", []string{"user1@example.test"}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		waitFor(t, "delivery at the sink", func() bool { return len(sink.Messages()) == 1 })
		metrics := get(t, "http://"+metricsAddr+"/metrics")
		if !strings.Contains(metrics, `mtastress_mta_messages_accepted_total{cluster="edge",node="edge-1"} 1`) {
			t.Fatalf("/metrics does not count the message:\n%s", metrics)
		}

		// SIGHUP reaches the daemon's handler, which the test process shares.
		data, _ := os.ReadFile(path)
		data = bytes.Replace(data, []byte("domains: [example.test]"), []byte("domains: [example.test, example.org]"), 1)
		os.WriteFile(path, data, 0o600)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitLog(t, log, `msg="config reloaded" .*applied=\[(domains)\]`)

		cancel()
		waitDone(t, done)
		waitLog(t, log, `msg="(mta stopped)"`)
	})

	t.Run("SIGTERM stops it gracefully with exit 0", func(t *testing.T) {
		path := mtaFile(t, "127.0.0.1:1", "")
		log, done := startMTACommand(t, context.Background(), path)
		waitLog(t, log, `msg=listening .*kind=(smtp)`)
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitDone(t, done)
		waitLog(t, log, `msg="shutting down" reason=(terminated)`)
	})

	t.Run("a taken port is exit 3", func(t *testing.T) {
		path := mtaFile(t, "127.0.0.1:1", "")
		sink, err := testenv.StartSink(testenv.SinkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Stop()
		data, _ := os.ReadFile(path)
		os.WriteFile(path, bytes.Replace(data, []byte("listen: 127.0.0.1:0"), []byte("listen: "+sink.Addr()), 1), 0o600)
		err, _ = execute(t, "mta", "--config", path)
		if exitCode(err) != exitEnvironment || !errors.Is(err, mta.ErrListen) {
			t.Fatalf("exit %d, error %v", exitCode(err), err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
