package mta

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// tlsHop is a go-smtp next hop that records each message and whether it came inside TLS.
type tlsHop struct {
	addr string

	mu    sync.Mutex
	inTLS []bool // one per message received
}

type tlsHopBackend struct{ h *tlsHop }

func (b tlsHopBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, ok := c.TLSConnectionState()
	return &tlsHopSession{h: b.h, tls: ok}, nil
}

type tlsHopSession struct {
	h   *tlsHop
	tls bool
}

func (s *tlsHopSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *tlsHopSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *tlsHopSession) Reset()                               {}
func (s *tlsHopSession) Logout() error                        { return nil }
func (s *tlsHopSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.h.mu.Lock()
	s.h.inTLS = append(s.h.inTLS, s.tls)
	s.h.mu.Unlock()
	return nil
}

func (h *tlsHop) received() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bool(nil), h.inTLS...)
}

// startTLSHop starts a next hop on 127.0.0.1:0; with offerTLS it advertises STARTTLS with a
// certificate the test makes, whose roots it returns.
func startTLSHop(t *testing.T, offerTLS bool) (*tlsHop, *x509.CertPool) {
	t.Helper()
	h := &tlsHop{}
	srv := smtp.NewServer(tlsHopBackend{h})
	srv.Domain = "hop.test"
	srv.ErrorLog = nopLogger{}
	var roots *x509.CertPool
	if offerTLS {
		certFile, keyFile, r := testCert(t, t.TempDir(), "hop.test", 7)
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		srv.TLSConfig, roots = &tls.Config{Certificates: []tls.Certificate{cert}}, r
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return h, roots
}

// syncBuffer is a log destination the test reads while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// relayOnce starts a node relaying to hop under pol, sends it one message and returns the
// node and its log.
func relayOnce(t *testing.T, hop string, pol TLSPolicy, roots *x509.CertPool) (*Server, *syncBuffer) {
	t.Helper()
	cfg := testConfig(t, hop)
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), nil))
	cfg.HopTLS = map[string]TLSPolicy{hop: pol}
	cfg.RootCAs = roots
	cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour // one attempt within the test
	s, addr := startServer(t, cfg)
	c := greeted(t, addr)
	expect(t, "message", c.sendMessage("a@example.net", []string{"user1@example.test"}, message("out")), "250 ")
	return s, logs
}

func TestStartTLSOutbound(t *testing.T) {
	t.Run("a hop that offers STARTTLS gets the message inside TLS", func(t *testing.T) {
		hop, _ := startTLSHop(t, true)
		_, logs := relayOnce(t, hop.addr, TLSPolicy{}, nil)
		eventually(t, 10*time.Second, "delivery", func() bool { return len(hop.received()) == 1 })
		if !hop.received()[0] {
			t.Error("message sent in the clear to a hop that offers STARTTLS")
		}
		eventually(t, 5*time.Second, "the mail log's delivered line", func() bool {
			return strings.Contains(logs.String(), "event=delivered") && strings.Contains(logs.String(), "tls=true")
		})
	})

	t.Run("a hop without STARTTLS gets the message in the clear by default", func(t *testing.T) {
		hop, _ := startTLSHop(t, false)
		relayOnce(t, hop.addr, TLSPolicy{}, nil)
		eventually(t, 10*time.Second, "delivery", func() bool { return len(hop.received()) == 1 })
	})

	t.Run("a hop without STARTTLS where it is required is deferred with the reason", func(t *testing.T) {
		hop, _ := startTLSHop(t, false)
		_, logs := relayOnce(t, hop.addr, TLSPolicy{Require: true}, nil)
		eventually(t, 10*time.Second, "the deferral", func() bool {
			return strings.Contains(logs.String(), "event=deferred") &&
				strings.Contains(logs.String(), "does not offer STARTTLS")
		})
		if n := len(hop.received()); n != 0 {
			t.Errorf("%d messages sent in the clear", n)
		}
	})

	t.Run("a verified hop whose certificate checks out gets the message", func(t *testing.T) {
		hop, roots := startTLSHop(t, true)
		relayOnce(t, hop.addr, TLSPolicy{Require: true, Verify: true}, roots)
		eventually(t, 10*time.Second, "delivery", func() bool { return len(hop.received()) == 1 })
	})

	t.Run("a verified hop with an untrusted certificate is deferred as a cryptographic failure", func(t *testing.T) {
		hop, _ := startTLSHop(t, true)
		_, logs := relayOnce(t, hop.addr, TLSPolicy{Verify: true}, x509.NewCertPool())
		eventually(t, 10*time.Second, "the deferral", func() bool {
			return strings.Contains(logs.String(), "event=deferred") &&
				strings.Contains(logs.String(), "STARTTLS with next hop failed")
		})
		if n := len(hop.received()); n != 0 {
			t.Errorf("%d messages sent despite the failed verification", n)
		}
	})
}
