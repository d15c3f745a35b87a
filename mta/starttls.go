package mta

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"time"
)

// Inbound STARTTLS (RFC 3207), run by the connection wrapper rather than by go-smtp. go-smtp
// would wrap its tls.Conn around ours, and all the wrapper does for a session (reply cleaning,
// the junk and error limits, the 421 before a cut, the data reader's mending, the lingering
// close's last replies) would then see ciphertext. Here go-smtp runs without a TLSConfig and
// never knows: the wrapper advertises STARTTLS in the EHLO reply, takes the command, answers
// 220, does the handshake on the socket, and from then on reads and writes through TLS, so
// every byte above it is plain text.
//
// go-smtp's transaction is reset for the STARTTLS by an RSET fed in its place (its reply is
// replaced by the 220). go-smtp keeps the EHLO name it was told before; RFC 3207 section 4.2
// has the client say EHLO again, and go-smtp's second EHLO resets as RSET does.

type tlsStep uint8

const (
	tlsNone  tlsStep = iota
	tlsAsked         // STARTTLS read; go-smtp is answering what came before it, and the RSET
	tlsOn            // the handshake is done
)

// holdingForTLS reports whether replies are held back: between a STARTTLS and its 220, the
// replies to the commands before it go out together with the 220.
func (c *slotConn) holdingForTLS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlsStep == tlsAsked
}

// startTLSIfDue runs the STARTTLS handshake once go-smtp has read everything before the
// STARTTLS and answered it, that is, when it asks for more with nothing left to hand it. It
// writes the held replies, less the last (the RSET's), then the 220, then shakes hands. A
// failed handshake ends the session: its bytes are no longer SMTP.
func (c *slotConn) startTLSIfDue() error {
	c.mu.Lock()
	due := c.tlsStep == tlsAsked && len(c.out) == 0
	shut := c.readShut || c.writeShut
	c.mu.Unlock()
	switch {
	case !due:
		return nil
	case shut:
		return io.EOF // the session was ended meanwhile (too many errors): no 220
	case c.srv.draining.Load():
		// Shutting down: no handshake to start. The held replies go out (less the RSET's),
		// then the 421.
		c.wmu.Lock()
		if i := lastReplyStart(c.tlsHold); i >= 0 {
			c.tlsHold = c.tlsHold[:i]
		}
		c.sayLocked(sprintfLine(replyShutdown, c.srv.cfg.Hostname))
		c.wmu.Unlock()
		return io.EOF
	}
	c.wmu.Lock()
	c.mu.Lock()
	shut = c.writeShut // a 421 said since the look above (goodbye takes wmu): no 220 after it
	c.mu.Unlock()
	if shut {
		c.wmu.Unlock()
		return io.EOF
	}
	held := c.tlsHold
	c.tlsHold = nil
	if i := lastReplyStart(held); i >= 0 {
		held = held[:i]
	}
	reply := append(held, "220 2.0.0 Ready to start TLS\r\n"...)
	// The handshake gets a fresh command timeout of its own (300 s, 10 s in stress), as
	// Postfix's smtpd_starttls_timeout follows the same stress rule.
	deadline := time.Now().Add(c.set.timeout)
	_ = c.Conn.SetWriteDeadline(deadline)
	_, err := c.Conn.Write(reply)
	c.wmu.Unlock()
	if err != nil {
		return c.tlsFailed(fmt.Errorf("writing the 220: %w", err))
	}
	c.mu.Lock()
	shut = c.readShut
	if !shut {
		_ = c.Conn.SetReadDeadline(deadline)
	}
	c.mu.Unlock()
	// Checked after the deadline is set: Shutdown sets draining, then wakes reads by moving
	// the deadline, so either this sees it or Shutdown's wake cuts the handshake.
	if shut || c.srv.draining.Load() {
		return io.EOF
	}
	tc := tls.Server(c.Conn, c.srv.cert.serverTLSConfig())
	if err := tc.Handshake(); err != nil {
		return c.tlsFailed(err)
	}
	st := tc.ConnectionState()
	c.log.Debug("TLS started", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	c.wmu.Lock()
	c.mu.Lock()
	c.tlsConn, c.tlsStep = tc, tlsOn
	c.mu.Unlock()
	c.wmu.Unlock()
	return nil
}

func (c *slotConn) tlsFailed(err error) error {
	c.log.Info("TLS handshake failed; closing session", "err", err, "stress", c.set.stress)
	c.mu.Lock()
	c.readShut, c.writeShut = true, true
	c.mu.Unlock()
	return err
}

// lastReplyStart is where the last reply line in b starts, or -1 when b holds none.
func lastReplyStart(b []byte) int {
	b = bytes.TrimSuffix(b, []byte("\r\n"))
	if len(b) == 0 {
		return -1
	}
	return bytes.LastIndexByte(b, '\n') + 1
}

// reader and writer are where the session's bytes come from and go to: the socket, or the TLS
// connection over it.
func (c *slotConn) reader() io.Reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tlsConn != nil {
		return c.tlsConn
	}
	return c.Conn
}

// writer is called with wmu held, under which tlsConn is set.
func (c *slotConn) writer() io.Writer {
	if c.tlsConn != nil {
		return c.tlsConn
	}
	return c.Conn
}

// closeWrite ends our side: TLS's close_notify first, then the TCP half-close. Caller holds wmu
// and has set a write deadline.
func (c *slotConn) closeWrite() {
	if c.tlsConn != nil {
		_ = c.tlsConn.CloseWrite()
	}
	if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
}

// inTLS reports whether the session runs inside STARTTLS.
func (c *slotConn) inTLS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlsStep == tlsOn
}

// advertiseTLS returns last, the final line of a reply whose earlier lines are in head, with a
// STARTTLS line before it when the reply is go-smtp's to EHLO and STARTTLS may be offered.
// go-smtp opens its EHLO reply with "250-Hello "; TestStartTLSInbound fails if that changes.
// Caller holds wmu.
func (c *slotConn) advertiseTLS(head, last []byte) []byte {
	if c.srv.cert == nil || !bytes.HasPrefix(head, []byte("250-Hello ")) || !bytes.HasPrefix(last, []byte("250 ")) {
		return last
	}
	c.mu.Lock()
	step := c.tlsStep
	c.mu.Unlock()
	if step == tlsOn {
		return last
	}
	// tlsAsked: a STARTTLS came in the same read as this EHLO, and is offered all the same.
	return append([]byte("250-STARTTLS\r\n"), last...)
}
