package mta

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Outbound STARTTLS. By default it is opportunistic (RFC 7435): used when the hop offers it,
// the certificate unchecked, and the clear text when it is not offered or its handshake fails.
// A transport entry may ask for more (TLSPolicy).
//
// go-smtp v0.26's client cannot start TLS on a Client it has greeted (only NewClientStartTLS,
// which says EHLO as "localhost"), so the clear-text prelude (greeting, EHLO, STARTTLS) is
// spoken here, and the greeting is replayed to the go-smtp client, which then says EHLO (again,
// inside TLS as RFC 3207 section 4.2 requires). TODO: drop the prelude once go-smtp's client
// exports StartTLS.

// TLSPolicy is what delivery asks of one next hop's STARTTLS.
type TLSPolicy struct {
	// Require: a hop that does not offer STARTTLS, or whose handshake fails, is deferred
	// instead of sent to in the clear.
	Require bool
	// Verify: the certificate must chain to Config.RootCAs (nil: the system's) and name the
	// hop's host. It implies Require: a verified hop that can drop to clear text verifies
	// nothing.
	Verify bool
}

// Deferral reasons of the TLS policy; the text is what the mail log's reply shows.
var (
	// RFC 8689 section 5 uses X.7.10 for mail that needs TLS a hop cannot give.
	errHopNoTLS = &hopError{enh: smtp.EnhancedCode{4, 7, 10},
		text: "next hop does not offer STARTTLS, which this destination requires (require_tls)"}
	errHopTLSFailed = errors.New("STARTTLS handshake failed")
)

// hopError is a failure to set up a connection that carries its own enhanced status code.
type hopError struct {
	enh  smtp.EnhancedCode
	text string
}

func (e *hopError) Error() string { return e.text }

// connResults defers the recipients of a hop that could not be reached or set up.
func connResults(hop string, idx []int, err error) []rcptResult {
	var he *hopError
	if errors.As(err, &he) {
		return allResults(hop, idx, true, 0, he.enh, he.text)
	}
	return allResults(hop, idx, true, 0, smtp.EnhancedCode{4, 4, 1}, "connection to next hop failed: "+err.Error())
}

// dialHop connects to hop and greets it, with STARTTLS as pol asks. An opportunistic
// handshake that fails is tried once more in the clear.
func (p *hopPool) dialHop(ctx context.Context, hop string, pol TLSPolicy) (*hopClient, error) {
	pc, err := p.dialOnce(ctx, hop, pol, true)
	if errors.Is(err, errHopTLSFailed) && !pol.Require && !pol.Verify {
		return p.dialOnce(ctx, hop, pol, false)
	}
	return pc, err
}

func (p *hopPool) dialOnce(ctx context.Context, hop string, pol TLSPolicy, tryTLS bool) (*hopClient, error) {
	conn, err := p.dialer.DialContext(ctx, "tcp", hop)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn, inTLS, err := p.prelude(conn, hop, pol, tryTLS)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = p.cfg.DeliveryTimeout
	c.SubmissionTimeout = 2 * p.cfg.DeliveryTimeout
	if err := c.Hello(p.cfg.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return &hopClient{c: c, conn: conn, tls: inTLS}, nil
}

// prelude reads the greeting, says EHLO and, if STARTTLS is offered and wanted, starts TLS.
// It returns the connection for the go-smtp client, with the greeting to be read again.
func (p *hopPool) prelude(conn net.Conn, hop string, pol TLSPolicy, tryTLS bool) (net.Conn, bool, error) {
	_ = conn.SetDeadline(time.Now().Add(p.cfg.DeliveryTimeout))
	defer conn.SetDeadline(time.Time{})
	tp := textproto.NewReader(newByteReader(conn))
	_, greeting, err := tp.ReadResponse(220)
	if err != nil {
		return conn, false, fmt.Errorf("greeting: %w", err)
	}
	offered := p.ehloOffersTLS(conn, tp)
	replay := "220 " + strings.SplitN(greeting, "\n", 2)[0] + "\r\n"
	switch {
	case !offered && (pol.Require || pol.Verify):
		return conn, false, errHopNoTLS
	case !offered || !tryTLS:
		return &replayConn{Conn: conn, r: io.MultiReader(strings.NewReader(replay), conn)}, false, nil
	}
	tc, err := p.startTLS(conn, tp, hop, pol)
	if err != nil {
		return conn, false, err
	}
	return &replayConn{Conn: tc, r: io.MultiReader(strings.NewReader(replay), tc)}, true, nil
}

// ehloOffersTLS says EHLO and reports whether STARTTLS is among the extensions. A hop that
// refuses EHLO offers nothing; the go-smtp client then falls back to HELO itself.
func (p *hopPool) ehloOffersTLS(conn net.Conn, tp *textproto.Reader) bool {
	if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", p.cfg.Hostname); err != nil {
		return false
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(msg, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(line), "STARTTLS") {
			return true
		}
	}
	return false
}

// startTLS sends STARTTLS and completes the handshake within the delivery timeout.
func (p *hopPool) startTLS(conn net.Conn, tp *textproto.Reader, hop string, pol TLSPolicy) (*tls.Conn, error) {
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return nil, err
	}
	if _, msg, err := tp.ReadResponse(220); err != nil {
		return nil, &hopError{enh: smtp.EnhancedCode{4, 7, 5}, text: "next hop refused STARTTLS: " + msg}
	}
	host, _, _ := net.SplitHostPort(hop)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, RootCAs: p.cfg.RootCAs,
		// RFC 7435: opportunistic TLS encrypts without authenticating; Verify asks for more.
		InsecureSkipVerify: !pol.Verify}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		// RFC 3463 X.7.5: cryptographic failure.
		return nil, fmt.Errorf("%w: %w", errHopTLSFailed, &hopError{enh: smtp.EnhancedCode{4, 7, 5},
			text: "STARTTLS with next hop failed: " + err.Error()})
	}
	return tc, nil
}

// replayConn reads r (the replayed greeting, then the connection) and writes to the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// byteReader reads one byte at a time, so that the prelude never reads past a reply into what
// belongs to the TLS handshake. The prelude is three short replies: the cost does not matter.
type byteReader struct{ r io.Reader }

func newByteReader(r io.Reader) *bufio.Reader { return bufio.NewReader(byteReader{r}) }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return b.r.Read(p)
}
