package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	mhsmtp "github.com/mailhog/MailHog-Server/smtp"
	"github.com/mailhog/MailHog-Server/websockets"
	"github.com/mailhog/data"
)

const (
	mailHogHostname     = "mailhog.test"
	mailHogReadyTimeout = 10 * time.Second
)

// MailHog is MailHog v1.0.1 in-process with in-memory storage: SMTP on one
// 127.0.0.1 listener, the API and the web UI on another, as MailHog's own
// main serves them when both bind addresses are equal.
//
// Differences from a MailHog binary, each on purpose:
//
//   - /api/v2/websocket (the UI's live updates) is served by a hub of ours,
//     fed from the SMTP sessions directly. MailHog feeds its hub through
//     api v1's event stream, a package-level variable that every CreateAPI
//     replaces: with two MailHogs in a process one would get the other's
//     events, and the race detector would object.
//
//   - /api/v1/events, the v1 event stream, answers 501 for the same reason.
//     The UI does not use it.
//
//   - Its storage calls are serialised: MailHog's in-memory List and Count
//     read without the lock that Store takes.
//
//   - The API and UI are built once per process and shared by every
//     instance, each request served with its own instance's storage
//     (mailhog_shared.go): MailHog's API keeps package state that a second
//     CreateAPI would race with.
//
// TODO: the shared API leaves four goroutines that never exit, once per
// process (api.CreateAPI's forwarder, the v1 and v2 loops, MailHog's own
// hub), and each instance's websocket hub stays too. The better design is a
// MailHog whose API takes a context and owns no package state.
type MailHog struct {
	store    *lockedStorage
	smtpLn   net.Listener
	httpLn   net.Listener
	httpSrv  *http.Server
	hub      *websockets.Hub
	received chan *data.Message // what sessions hand over after storing

	wg        sync.WaitGroup // accept loop, SMTP sessions, HTTP Serve
	drainStop chan struct{}
	drainDone chan struct{}
	stopOnce  sync.Once

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // SMTP and hijacked HTTP conns; caller holds mu
	closed bool                  // caller holds mu
}

// StartMailHog starts MailHog and returns once its API answers and its SMTP
// port greets.
//
// It silences MailHog's logging (see mailhog_log.go) by filtering the
// standard logger's output as it is at this call: configure the process's
// logging (slog.SetDefault, log.SetOutput) before starting MailHog.
func StartMailHog() (*MailHog, error) {
	quietMailHogLogs()

	m := &MailHog{
		store:     newLockedStorage(),
		received:  make(chan *data.Message),
		drainStop: make(chan struct{}),
		drainDone: make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	if err := m.listen(); err != nil {
		return nil, err
	}
	m.httpSrv = m.newHTTPServer()

	go m.drain()
	m.wg.Add(2)
	go m.acceptSMTP()
	go func() {
		defer m.wg.Done()
		_ = m.httpSrv.Serve(m.httpLn)
	}()

	if err := m.waitReady(); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

func (m *MailHog) listen() error {
	var err error
	if m.smtpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return fmt.Errorf("testenv: mailhog smtp listen: %w", err)
	}
	if m.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		_ = m.smtpLn.Close()
		return fmt.Errorf("testenv: mailhog http listen: %w", err)
	}
	return nil
}

// SMTPAddr is MailHog's SMTP address, 127.0.0.1:port.
func (m *MailHog) SMTPAddr() string { return m.smtpLn.Addr().String() }

// APIURL is the base of MailHog's API, http://127.0.0.1:port; it serves
// /api/v1 and /api/v2.
func (m *MailHog) APIURL() string { return "http://" + m.httpLn.Addr().String() }

// UIURL is MailHog's web page.
func (m *MailHog) UIURL() string { return m.APIURL() + "/" }

// Messages returns every message MailHog holds; see FetchMailHogMessages.
func (m *MailHog) Messages(ctx context.Context) ([]MailHogMessage, error) {
	return FetchMailHogMessages(ctx, m.APIURL())
}

// Stop closes both listeners and every connection, and waits for the SMTP
// sessions to end; the stored messages go with it. Calling it again does
// nothing.
func (m *MailHog) Stop() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		conns := m.conns
		m.conns = nil
		m.mu.Unlock()

		_ = m.smtpLn.Close()
		_ = m.httpSrv.Close() // closes httpLn and the connections it still owns
		_ = m.httpLn.Close()  // in case Serve had not started
		for c := range conns {
			_ = c.Close()
		}
		m.wg.Wait()

		// Only now: a session may have been handing a message over.
		close(m.drainStop)
		<-m.drainDone
	})
}

// newHTTPServer serves this instance: our websocket hub and a refusal of the v1 event stream
// in front (both long-lived), everything else through the process's one MailHog API and UI
// (mailhog_shared.go) with this instance's storage.
func (m *MailHog) newHTTPServer() *http.Server {
	m.hub = websockets.NewHub()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/websocket", m.hub.Serve)
	mux.HandleFunc("/api/v1/events", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the v1 event stream is not served in-process", http.StatusNotImplemented)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { serveShared(m.store, w, r) })

	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A handler panic would otherwise print a stack to stderr.
		ErrorLog:  log.New(io.Discard, "", 0),
		ConnState: m.trackHijacked,
	}
}

// trackHijacked keeps websocket connections, which http.Server.Close does
// not close, so that Stop can. One closed by its client stays in the map
// until Stop: a few bytes per page load of the UI.
func (m *MailHog) trackHijacked(c net.Conn, state http.ConnState) {
	if state == http.StateHijacked && !m.track(c) {
		_ = c.Close()
	}
}

// track records c for Stop; false means Stop has begun and c must be closed.
func (m *MailHog) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *MailHog) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, c)
}

func (m *MailHog) acceptSMTP() {
	defer m.wg.Done()
	var backoff acceptBackoff
	for {
		c, err := m.smtpLn.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff.wait()
			continue
		}
		backoff.reset()
		if !m.startSession(c) {
			_ = c.Close()
		}
	}
}

// startSession runs MailHog's SMTP session on c. The wait group is added to
// under mu, before Stop can wait on it.
func (m *MailHog) startSession(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[c] = struct{}{}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.untrack(c)
		mhsmtp.Accept(c.RemoteAddr().String(), c, m.store, m.received, mailHogHostname, nil)
	}()
	return true
}

// drain takes every message a session hands over (MailHog's session blocks
// until someone does) and pushes it to the UI's websocket clients. The hub
// never blocks for long: it drops clients that are not keeping up.
func (m *MailHog) drain() {
	defer close(m.drainDone)
	for {
		select {
		case msg := <-m.received:
			m.hub.Broadcast(msg)
		case <-m.drainStop:
			return
		}
	}
}

// waitReady polls the API and reads the SMTP greeting, within
// mailHogReadyTimeout.
func (m *MailHog) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), mailHogReadyTimeout)
	defer cancel()
	var lastErr error
	for {
		if lastErr = m.probe(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: mailhog after %s: %v", ErrNotReady, mailHogReadyTimeout, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (m *MailHog) probe(ctx context.Context) error {
	if _, err := fetchMailHogPage(ctx, m.APIURL(), 0, 1); err != nil {
		return err
	}
	return probeSMTPGreeting(ctx, m.SMTPAddr())
}

// probeSMTPGreeting connects, expects a 220 greeting and says QUIT.
func probeSMTPGreeting(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("smtp greeting: %w", err)
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("smtp greeting %q", strings.TrimSpace(line))
	}
	_, _ = io.WriteString(c, "QUIT\r\n")
	return nil
}

// acceptBackoff spaces out retries after accept errors such as running out
// of file descriptors, as net/http does.
type acceptBackoff struct{ delay time.Duration }

func (b *acceptBackoff) reset() { b.delay = 0 }

// wait sleeps before the next Accept: 5 ms, doubling up to 1 s.
func (b *acceptBackoff) wait() {
	if b.delay == 0 {
		b.delay = 5 * time.Millisecond
	} else if b.delay *= 2; b.delay > time.Second {
		b.delay = time.Second
	}
	time.Sleep(b.delay)
}
