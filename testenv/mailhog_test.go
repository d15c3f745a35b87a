package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func startMailHog(t *testing.T) *MailHog {
	t.Helper()
	m, err := StartMailHog()
	if err != nil {
		t.Fatalf("StartMailHog: %v", err)
	}
	t.Cleanup(m.Stop)
	return m
}

// sendToMailHog sends one message per subject over a single SMTP session.
func sendToMailHog(t *testing.T, addr string, subjects ...string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	for i, subject := range subjects {
		if err := c.Mail("alerts@example.test"); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		if err := c.Rcpt("ops@example.test"); err != nil {
			t.Fatalf("RCPT: %v", err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("DATA: %v", err)
		}
		fmt.Fprintf(w, "Subject: %s\r\nMessage-ID: <%d@test>\r\n\r\nbody %d\r\n", subject, i, i)
		if err := w.Close(); err != nil {
			t.Fatalf("end of data: %v", err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}

// waitMailHog polls MailHog until it holds n messages and returns them.
func waitMailHog(t *testing.T, m *MailHog, n int) []MailHogMessage {
	t.Helper()
	var msgs []MailHogMessage
	eventually(t, 10*time.Second, func() (bool, string) {
		var err error
		msgs, err = m.Messages(testContext(t, 5*time.Second))
		if err != nil {
			return false, err.Error()
		}
		return len(msgs) >= n, fmt.Sprintf("%d of %d messages", len(msgs), n)
	})
	return msgs
}

func TestMailHogStoresMailSentOverSMTP(t *testing.T) {
	m := startMailHog(t)
	sendToMailHog(t, m.SMTPAddr(), "MTA Stress: edge-1 is in stress")

	msgs := waitMailHog(t, m, 1)
	got := msgs[0]
	if got.Subject != "MTA Stress: edge-1 is in stress" {
		t.Errorf("Subject = %q", got.Subject)
	}
	if got.From != "alerts@example.test" || len(got.To) != 1 || got.To[0] != "ops@example.test" {
		t.Errorf("envelope = %q -> %q", got.From, got.To)
	}
	if !strings.Contains(got.Body, "body 0") || got.ID == "" || got.Created.IsZero() {
		t.Errorf("message = %+v", got)
	}
	if v := got.Headers["Message-ID"]; len(v) != 1 || v[0] != "<0@test>" {
		t.Errorf("Message-ID header = %q", v)
	}
}

func TestMailHogPagesThroughMoreThanOnePage(t *testing.T) {
	m := startMailHog(t)
	const n = 60 // more than MailHog's page of 50
	subjects := make([]string, n)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("message %d", i)
	}
	sendToMailHog(t, m.SMTPAddr(), subjects...)

	msgs := waitMailHog(t, m, n)
	if len(msgs) != n {
		t.Fatalf("got %d messages, want %d", len(msgs), n)
	}
	seen := make(map[string]bool)
	for _, msg := range msgs {
		seen[msg.Subject] = true
	}
	for _, s := range subjects {
		if !seen[s] {
			t.Errorf("missing %q", s)
		}
	}
}

func TestMailHogServesTheUIPage(t *testing.T) {
	m := startMailHog(t)
	ctx := testContext(t, 5*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.UIURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", m.UIURL(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	ctype := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ctype, "text/html") {
		t.Fatalf("GET %s = %s, %q", m.UIURL(), resp.Status, ctype)
	}
	if !bytes.Contains(body, []byte("MailHog")) || !bytes.Contains(body, []byte("<html")) {
		t.Errorf("UI page does not look like MailHog's:\n%.300s", body)
	}
}

func TestMailHogStopIsIdempotentAndCloses(t *testing.T) {
	m, err := StartMailHog()
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(m.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m.Stop()
	m.Stop()
	if err := c.Noop(); err == nil {
		t.Error("NOOP after Stop succeeded, want the connection closed")
	}
	if _, err := m.Messages(testContext(t, time.Second)); !errors.Is(err, ErrMailHogAPI) {
		t.Errorf("Messages after Stop = %v, want ErrMailHogAPI", err)
	}
}

func TestFetchMailHogMessagesReportsABadAPI(t *testing.T) {
	m := startMailHog(t)
	_, err := FetchMailHogMessages(testContext(t, 5*time.Second), m.APIURL()+"/nowhere")
	if !errors.Is(err, ErrMailHogAPI) {
		t.Errorf("FetchMailHogMessages on a wrong URL = %v, want ErrMailHogAPI", err)
	}
}

// TestMailHogIsQuiet checks that MailHog's SMTP and API logging reaches
// neither the standard logger's output nor stdout, while other lines of the
// standard logger still do.
func TestMailHogIsQuiet(t *testing.T) {
	var logged bytes.Buffer
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(&logged)
	log.SetFlags(0)
	t.Cleanup(func() { log.SetOutput(prevOut); log.SetFlags(prevFlags) })

	stdout := captureStdout(t)
	m := startMailHog(t)
	sendToMailHog(t, m.SMTPAddr(), "quiet")
	waitMailHog(t, m, 1)
	log.Print("ours")
	printed := stdout()

	if got := logged.String(); got != "ours\n" {
		t.Errorf("standard log got %q, want only our line", got)
	}
	if printed != "" {
		t.Errorf("stdout got %q, want nothing", printed)
	}
}

// captureStdout redirects os.Stdout until the returned function is called,
// which restores it and returns what was written.
func captureStdout(t *testing.T) func() string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	prev := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	restored := false
	restore := func() string {
		if restored {
			return ""
		}
		restored = true
		os.Stdout = prev
		_ = w.Close()
		out := <-done
		_ = r.Close()
		return out
	}
	t.Cleanup(func() { restore() })
	return restore
}

func TestMailHogPushesNewMailToTheUIWebsocket(t *testing.T) {
	m := startMailHog(t)
	wsURL := "ws" + strings.TrimPrefix(m.APIURL(), "http") + "/api/v2/websocket"
	ws, _, err := websocket.DefaultDialer.DialContext(testContext(t, 5*time.Second), wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	defer ws.Close()

	// The hub registers a client asynchronously: keep sending until one
	// message comes through.
	var pushed mailHogItem
	got := make(chan error, 1)
	go func() {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		got <- ws.ReadJSON(&pushed)
	}()
	eventually(t, 10*time.Second, func() (bool, string) {
		sendToMailHog(t, m.SMTPAddr(), "pushed")
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("read websocket: %v", err)
			}
			return true, ""
		case <-time.After(50 * time.Millisecond):
			return false, "no message on the websocket"
		}
	})
	if s := headerValue(pushed.Content.Headers, "Subject"); s != "pushed" {
		t.Errorf("pushed subject = %q, want %q", s, "pushed")
	}

	// http.Server.Close leaves hijacked connections alone; Stop must not.
	m.Stop()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Error("websocket still open 5s after Stop")
			}
			break
		}
	}
}

func TestMailHogsStartedTogetherAreSeparate(t *testing.T) {
	ms := make([]*MailHog, 2)
	errs := make(chan error, len(ms))
	for i := range ms {
		go func() {
			var err error
			ms[i], err = StartMailHog()
			errs <- err
		}()
	}
	for range ms {
		if err := <-errs; err != nil {
			t.Fatalf("StartMailHog: %v", err)
		}
	}
	for _, m := range ms {
		t.Cleanup(m.Stop)
	}
	sendToMailHog(t, ms[0].SMTPAddr(), "only in the first")
	waitMailHog(t, ms[0], 1)
	if msgs, err := ms[1].Messages(testContext(t, 5*time.Second)); err != nil || len(msgs) != 0 {
		t.Errorf("second MailHog holds %d messages (%v), want none", len(msgs), err)
	}
}
