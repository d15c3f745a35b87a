package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

func startSink(t *testing.T, opts SinkOptions) *Sink {
	t.Helper()
	s, err := StartSink(opts)
	if err != nil {
		t.Fatalf("StartSink: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// dialSMTP returns a client that has been greeted and said EHLO.
func dialSMTP(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

func testMail(id, subject string) string {
	return fmt.Sprintf("Message-ID: %s\r\nSubject: %s\r\nFrom: a@example.net\r\n\r\nbody of %s\r\n",
		id, subject, id)
}

func TestSinkRecordsEveryMessage(t *testing.T) {
	s := startSink(t, SinkOptions{})
	c := dialSMTP(t, s.Addr())
	send := func(from string, to []string, id string) {
		t.Helper()
		if err := c.SendMail(from, to, strings.NewReader(testMail(id, "hi"))); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	send("a@example.net", []string{"x@example.test", "y@example.test"}, "<1@test>")
	send("", []string{"bounced@example.net"}, "<2@test>") // null sender
	send("a@example.net", []string{"x@example.test"}, "<1@test>")

	if err := s.Wait(testContext(t, 5*time.Second), 3); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(); got != 3 {
		t.Errorf("Count = %d, want 3", got)
	}
	msgs := s.Messages()
	if msgs[1].From != "" || msgs[0].From != "a@example.net" {
		t.Errorf("senders = %q, %q; want a@example.net and the null sender", msgs[0].From, msgs[1].From)
	}
	if diff := cmp.Diff([]string{"x@example.test", "y@example.test"}, msgs[0].To); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(msgs[0].Data), "body of <1@test>") {
		t.Errorf("data = %q", msgs[0].Data)
	}
	want := map[string]int{"<1@test>": 2, "<2@test>": 1}
	if diff := cmp.Diff(want, s.CountByHeader("message-id")); diff != "" {
		t.Errorf("CountByHeader (-want +got):\n%s", diff)
	}
}

func TestSinkMessagesIsACopy(t *testing.T) {
	s := startSink(t, SinkOptions{})
	c := dialSMTP(t, s.Addr())
	if err := c.SendMail("a@example.net", []string{"x@example.test"},
		strings.NewReader(testMail("<1@test>", "hi"))); err != nil {
		t.Fatal(err)
	}
	s.Messages()[0].To[0] = "changed"
	if got := s.Messages()[0].To[0]; got != "x@example.test" {
		t.Errorf("recorded recipient = %q after changing a copy", got)
	}
}

func TestSinkSetTempFailAnswers451(t *testing.T) {
	s := startSink(t, SinkOptions{})
	s.SetTempFail(true)
	c := dialSMTP(t, s.Addr())
	err := c.Mail("a@example.net", nil)
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) || smtpErr.Code != 451 ||
		smtpErr.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("MAIL while down = %v, want 451 4.3.0", err)
	}

	s.SetTempFail(false)
	if err := c.SendMail("a@example.net", []string{"x@example.test"},
		strings.NewReader(testMail("<1@test>", "hi"))); err != nil {
		t.Fatalf("send after recovery: %v", err)
	}
	if got := s.Count(); got != 1 {
		t.Errorf("Count = %d, want 1", got)
	}
}

func TestSinkTempFailOptionRefusesChosenMessages(t *testing.T) {
	s := startSink(t, SinkOptions{TempFail: func(_ string, to []string) bool {
		return strings.HasPrefix(to[0], "down@")
	}})
	c := dialSMTP(t, s.Addr())
	err := c.SendMail("a@example.net", []string{"down@example.test"},
		strings.NewReader(testMail("<1@test>", "hi")))
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) || smtpErr.Code != 451 {
		t.Fatalf("send to down@ = %v, want 451", err)
	}
	if err := c.SendMail("a@example.net", []string{"up@example.test"},
		strings.NewReader(testMail("<2@test>", "hi"))); err != nil {
		t.Fatalf("send to up@: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"<2@test>": 1}, s.CountByHeader("Message-ID")); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
}

func TestSinkWaitEndsWithTheContext(t *testing.T) {
	s := startSink(t, SinkOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on an empty sink = %v, want DeadlineExceeded", err)
	}
}

func TestSinkStopClosesConnectionsAndIsIdempotent(t *testing.T) {
	s, err := StartSink(SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialSMTP(t, s.Addr())
	s.Stop()
	s.Stop()
	if err := c.Noop(); err == nil {
		t.Error("NOOP after Stop succeeded, want the connection closed")
	}
	if _, err := smtp.Dial(s.Addr()); err == nil {
		t.Error("dial after Stop succeeded")
	}
}
