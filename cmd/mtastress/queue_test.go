package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mtastress/mtastress/testenv"
)

func TestQueueCommand(t *testing.T) {
	// The hop refuses everything with 451, so the message stays queued.
	sink, err := testenv.StartSink(testenv.SinkOptions{TempFail: func(string, []string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Stop()
	path := mtaFile(t, sink.Addr(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log, done := startMTACommand(t, ctx, path)
	smtpAddr := waitLog(t, log, `msg=listening .*kind=smtp addr=(127\.0\.0\.1:\d+)`)
	c, err := smtp.Dial(smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@example.net", []string{"user1@example.test"}, strings.NewReader("Subject: q\r\n\r\nHi.\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	id := waitLog(t, log, `event=deferred queue_id=([0-9A-F]+)`)

	run := func(want int, args ...string) string {
		t.Helper()
		err, out := execute(t, append(args, "--config", path)...)
		if got := exitCode(err); got != want {
			t.Fatalf("%v: exit %d (%v), want %d\n%s", args, got, err, want, out)
		}
		return out
	}

	t.Run("list on a running node shows the message, its recipient and its last error", func(t *testing.T) {
		// The deferral is logged just before the attempt is recorded: poll.
		var out string
		waitFor(t, "the attempt in the list", func() bool {
			out = run(0, "queue", "list")
			return strings.Contains(out, "last error:")
		})
		for _, want := range []string{id, "user1@example.test", "last error:", "1 message\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("list output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("hold, flush, release on a running node", func(t *testing.T) {
		run(0, "queue", "hold", id)
		if out := run(0, "queue", "list"); !regexp.MustCompile(id + " HELD").MatchString(out) {
			t.Errorf("not held:\n%s", out)
		}
		if out := run(0, "queue", "flush"); !strings.Contains(out, "0 messages due now") {
			t.Errorf("flush of a held queue: %s", out)
		}
		run(0, "queue", "release", id)
		run(1, "queue", "hold", "NOSUCHID")
	})

	cancel()
	waitDone(t, done)

	t.Run("on the stopped node: list, hold, delete", func(t *testing.T) {
		if out := run(0, "queue", "list"); !strings.Contains(out, "node stopped") || !strings.Contains(out, id) {
			t.Errorf("stopped list:\n%s", out)
		}
		run(0, "queue", "hold", id)
		run(0, "queue", "delete", id)
		if out := run(0, "queue", "list"); !strings.Contains(out, "0 messages") {
			t.Errorf("after delete:\n%s", out)
		}
		run(1, "queue", "delete", id)
	})
}

// TestQueueCommandNeverMakesASpool: a spool path with no spool (a typo, a node never started)
// is bad input, not an empty queue, and the tool creates nothing there.
func TestQueueCommandNeverMakesASpool(t *testing.T) {
	path := mtaFile(t, "127.0.0.1:25", "")
	spool := filepath.Join(filepath.Dir(path), "spool")
	err, out := execute(t, "queue", "list", "--config", path)
	if got := exitCode(err); got != exitBadInput || !strings.Contains(err.Error(), "no queue directory") {
		t.Fatalf("exit %d (%v), want %d naming the missing queue\n%s", got, err, exitBadInput, out)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Fatalf("queue list made %s (%v)", spool, err)
	}
	err, _ = execute(t, "queue", "delete", "--config", path)
	if got := exitCode(err); got != exitBadInput || !strings.Contains(err.Error(), "one message ID") {
		t.Fatalf("queue delete without an ID: exit %d (%v)", got, err)
	}
}
