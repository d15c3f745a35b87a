package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

const (
	// sinkTimeout is the per-command timeout; RFC 5321 section 4.5.3.2.7
	// asks a server to wait at least 5 minutes for the next command.
	sinkTimeout = 5 * time.Minute
	// sinkMaxMessageBytes keeps a runaway client from filling memory.
	sinkMaxMessageBytes = 64 << 20
)

// errSinkTempFail is the answer while the sink plays a next hop that is down.
var errSinkTempFail = &smtp.SMTPError{
	Code:         451,
	EnhancedCode: smtp.EnhancedCode{4, 3, 0},
	Message:      "Sink refusing mail for now, try again later",
}

// SinkOptions configures StartSink. The zero value accepts everything.
type SinkOptions struct {
	// TempFail, when set, is asked after each message's data has arrived;
	// true answers 451 4.3.0 and the message is not recorded. It runs on
	// the session's goroutine and must be safe for concurrent use.
	TempFail func(from string, to []string) bool
	// Domain is the name in the greeting; "" means "sink.test".
	Domain string
}

// SinkMessage is one message as the sink received it.
type SinkMessage struct {
	From     string   // envelope sender; "" for the null sender <>
	To       []string // envelope recipients, in RCPT order
	Data     []byte   // the message as sent, dot-unstuffed
	Received time.Time
}

// Sink is a recording SMTP server that accepts any sender and recipient.
type Sink struct {
	opts     SinkOptions
	srv      *smtp.Server
	ln       net.Listener
	served   chan struct{} // closed when Serve has returned
	stopOnce sync.Once
	tempFail atomic.Bool

	mu       sync.Mutex
	messages []SinkMessage // caller holds mu
	changed  chan struct{} // closed and replaced on each new message; caller holds mu
}

// StartSink starts a sink on a random port of 127.0.0.1.
func StartSink(opts SinkOptions) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testenv: sink listen: %w", err)
	}
	s := &Sink{opts: opts, ln: ln, served: make(chan struct{}), changed: make(chan struct{})}

	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = opts.Domain
	if s.srv.Domain == "" {
		s.srv.Domain = "sink.test"
	}
	s.srv.ReadTimeout = sinkTimeout
	s.srv.WriteTimeout = sinkTimeout
	s.srv.MaxMessageBytes = sinkMaxMessageBytes
	// go-smtp logs connection errors to stderr by default; a test double
	// must not print into the product's output.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)

	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the sink's address, 127.0.0.1:port.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Stop closes the listener and every connection and waits for the accept
// loop to end. Calling it again does nothing.
func (s *Sink) Stop() {
	s.stopOnce.Do(func() {
		_ = s.srv.Close()
		// Close does not see the listener if Serve has not registered it
		// yet; closing it here as well ends Serve either way.
		_ = s.ln.Close()
		<-s.served
	})
}

// SetTempFail makes the sink answer MAIL and RCPT with 451 4.3.0 while on,
// as a next hop that is down for maintenance would.
func (s *Sink) SetTempFail(on bool) { s.tempFail.Store(on) }

// Messages returns a copy of every message recorded, in arrival order.
func (s *Sink) Messages() []SinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SinkMessage, len(s.messages))
	for i, m := range s.messages {
		m.To = append([]string(nil), m.To...)
		m.Data = append([]byte(nil), m.Data...)
		out[i] = m
	}
	return out
}

// Count is the number of messages recorded.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// CountByHeader maps each value of the header name (its first occurrence in
// a message) to the number of messages carrying it. Messages without the
// header, or whose header block does not parse, are not counted. With a
// unique id header, a count above 1 is a duplicate and a missing id a loss.
func (s *Sink) CountByHeader(name string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[string]int)
	for _, m := range s.messages {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			continue
		}
		if v := msg.Header.Get(name); v != "" {
			counts[v]++
		}
	}
	return counts
}

// Wait returns once at least n messages are recorded, or with ctx's error.
func (s *Sink) Wait(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		have, changed := len(s.messages), s.changed
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("testenv: sink has %d of %d messages: %w", have, n, ctx.Err())
		}
	}
}

func (s *Sink) record(m SinkMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Sink) newSession(*smtp.Conn) (smtp.Session, error) {
	return &sinkSession{sink: s}, nil
}

// sinkSession collects one transaction at a time; go-smtp calls it from the
// connection's goroutine only.
type sinkSession struct {
	sink *Sink
	from string
	to   []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.tempFail.Load() {
		return errSinkTempFail
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.sink.tempFail.Load() {
		return errSinkTempFail
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		// go-smtp turns a plain error into a permanent 554; a broken
		// connection or an oversized message keeps its own code.
		var smtpErr *smtp.SMTPError
		if errors.As(err, &smtpErr) {
			return smtpErr
		}
		return errSinkTempFail
	}
	if f := ss.sink.opts.TempFail; f != nil && f(ss.from, ss.to) {
		return errSinkTempFail
	}
	ss.sink.record(SinkMessage{From: ss.from, To: ss.to, Data: data, Received: time.Now()})
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
