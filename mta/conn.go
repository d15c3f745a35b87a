package mta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"crypto/tls"

	"github.com/emersion/go-smtp"
)

// slotConn is the connection go-smtp serves. Beyond holding the slot until it closes, it does
// what go-smtp cannot do per connection:
//
//   - deadlines: go-smtp's ReadTimeout is server-wide and one deadline covers a whole DATA body;
//     here each read gets this session's command timeout, and during DATA a deadline that
//     grows only with the bytes received at MinDataRate;
//   - after a read timeout every later read fails, so body bytes are never parsed as commands
//     (go-smtp issue 196);
//   - the hard error limit and junk command limit, stricter under stress than go-smtp's fixed
//     three protocol errors (NOOP and VRFY never reach the Session, so they are counted here);
//   - the 421 on shutdown, which go-smtp does not send.
type slotConn struct {
	net.Conn
	pool   *slotPool
	srv    *Server
	id     string
	ip     netip.Addr
	set    settings
	exempt bool // set before the connection is handed out
	start  time.Time
	log    *slog.Logger

	closeOnce sync.Once
	wmu       sync.Mutex // serialises writes: go-smtp's replies and our own 421s
	pending   []byte     // continuation lines of a multi-line reply, under wmu

	mu         sync.Mutex
	deadline   time.Time // the read deadline go-smtp asked for, clamped to ours
	dataMode   bool      // between a 354 and the reply after the data
	dataStart  time.Time
	dataBytes  int64
	lastRead   time.Time
	readShut   bool // reads return EOF: timed out, too many errors, or shutting down
	writeShut  bool // writes are dropped: our last word (a 421) is said
	inTxn      bool // a MAIL was accepted and the transaction has not ended
	errs, junk int
	verb       []byte // the start of the command line being read, for the junk count
	in, out    []byte // bytes read and not yet looked at; bytes looked at, for go-smtp (connread.go)
	dstate     dataState
	dataAsked  bool  // the command line just looked at is DATA: what follows waits for its reply
	bdatSkip   int64 // chunk bytes still to pass unscanned after a BDAT command
	ehlo       bool  // the client said EHLO (for the Received header's "with ESMTP")
	// STARTTLS runs here, under go-smtp, so that everything above sees plain text (starttls.go).
	tlsStep   tlsStep
	tlsConn   *tls.Conn // set once the handshake is done; then every read and write goes through it
	tlsHold   []byte    // replies held back while a STARTTLS waits for its turn, under wmu
	lingering bool      // closed by go-smtp; the socket is read and closed by linger
	accepted  int       // messages accepted in this session
}

// settings are a session's limits, fixed when it gets its slot (tuning.go).
type settings struct {
	stress      bool
	timeout     time.Duration
	hardErrors  int
	junk        int
	minDataRate int // bytes per second; 0: off
}

func (s *Server) settingsFor(stress bool) settings {
	t := s.tuning.Load()
	if stress {
		return t.stress
	}
	return t.normal
}

func (s *Server) wrapConn(c net.Conn, ip netip.Addr, p *slotPool, stress bool) *slotConn {
	id := s.nextSessionID()
	sc := &slotConn{
		Conn: c, pool: p, srv: s, id: id, ip: ip, set: s.settingsFor(stress),
		start: time.Now(),
	}
	sc.log = s.log.With("session", id, "client", ip.String())
	return sc
}

// replyTooManyErrors ends a session at its hard error limit.
const replyTooManyErrors = "421 4.7.0 %s Error: too many errors"

// errDataTimeout is what a read returns after a timeout inside message data (DATA, or a BDAT
// chunk): go-smtp turns a plain error there into a permanent 554 (BDAT) or hands it to Data, so
// it must already be the reply. The connection closes after it.
var errDataTimeout = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
	Message: "Timeout waiting for data, closing connection"}

// errChunkCut is what a read returns when the client's input ends inside a BDAT chunk, for the
// reason cutShort gives; nothing of the message is queued, and the client may send it again.
var errChunkCut = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0},
	Message: "Connection ended inside a BDAT chunk; nothing was queued"}

// prepareRead sets the inner deadline, then checks whether the session must end. In that
// order: Shutdown sets draining and then moves the deadline, so one of the two is seen. The
// deadline is set under mu and only while reads go on, so it never undoes the deadline of a
// last word or of the linger after Close, which are set under mu too.
func (c *slotConn) prepareRead() (time.Time, bool) {
	c.mu.Lock()
	dl := c.readDeadlineLocked()
	readShut, idle := c.readShut, !c.inTxn && !c.dataMode
	if !readShut {
		_ = c.Conn.SetReadDeadline(dl)
	}
	c.mu.Unlock()
	if readShut {
		return dl, true
	}
	if idle && c.srv.draining.Load() {
		c.goodbye(replyShutdown)
		return dl, true
	}
	return dl, false
}

// readDeadlineLocked is the deadline of the next read. During DATA it is the earlier of the
// idle timeout since the last bytes and the whole-body budget at MinDataRate (Postfix's
// smtpd_min_data_rate), so a client that trickles bytes cannot hold a slot. Caller holds mu.
func (c *slotConn) readDeadlineLocked() time.Time {
	if !c.dataMode {
		if c.deadline.IsZero() {
			return time.Now().Add(c.set.timeout) // go-smtp always sets one; never read without
		}
		return c.deadline
	}
	dl := c.lastRead.Add(c.set.timeout)
	if rate := c.set.minDataRate; rate > 0 {
		budget := c.dataStart.Add(c.set.timeout + time.Duration(c.dataBytes)*time.Second/time.Duration(rate))
		if budget.Before(dl) {
			dl = budget
		}
	}
	return dl
}

// timedOut ends reading for good and picks the error go-smtp should see.
func (c *slotConn) timedOut() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readShut = true
	inData := c.dataMode || c.bdatSkip > 0
	c.bdatSkip = 0 // a chunk cut by the timeout is dead; what follows is never read
	c.log.Info("session timed out", "data", inData, "stress", c.set.stress)
	if inData {
		return errDataTimeout
	}
	// Reading a command, go-smtp answers a timeout with its own 421 4.4.2 and closes.
	return os.ErrDeadlineExceeded
}

// SetReadDeadline records the deadline go-smtp asks for, clamped to this session's timeout;
// Read applies it.
func (c *slotConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = c.clampLocked(t)
	return nil
}

func (c *slotConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	t = c.clampLocked(t)
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *slotConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *slotConn) clampLocked(t time.Time) time.Time {
	limit := time.Now().Add(c.set.timeout)
	if t.IsZero() || t.After(limit) {
		return limit
	}
	return t
}

// commandLocked classifies one complete command line. Caller holds mu.
func (c *slotConn) commandLocked() bool {
	verb, arg := parseCommand(c.verb)
	c.verb = c.verb[:0]
	switch verb {
	case "EHLO":
		c.ehlo = true
		fallthrough
	case "HELO", "NOOP", "RSET", "VRFY":
		// Postfix's smtpd_junk_command_limit: past it, each junk command is an error.
		if c.junk++; c.junk > c.set.junk {
			return c.errorLocked()
		}
	case "STARTTLS":
		if c.srv.cert != nil && c.tlsStep == tlsNone {
			c.tlsStep = tlsAsked
		}
	case "DATA":
		c.dataAsked = true
	case "BDAT":
		// The chunk that follows is message data, not commands.
		// TODO: MinDataRate does not apply to BDAT chunks; each is bounded by the command
		// timeout only. A chunk-aware deadline like DATA's would close that.
		c.bdatSkip = bdatChunk(arg)
	}
	return false
}

// parseCommand splits a command line as go-smtp v0.26.0's parseCmd does, so that the wrapper
// and go-smtp agree on what every line is: a verb is the first four characters, and a longer
// line needs a space after them (else go-smtp refuses it, and verb is ""). STARTTLS is the one
// eight-letter verb: the wrapper takes it alone, trailing blanks allowed; go-smtp takes any line
// that starts with it, so one with more on it reaches go-smtp and gets its 502.
// TestParseCommand holds the cases; the attack tests hold the two together on the wire.
func parseCommand(line []byte) (verb string, arg []byte) {
	line = bytes.TrimRight(line, "\r\n")
	switch {
	case bytes.EqualFold(bytes.TrimRight(line, " \t"), []byte("STARTTLS")):
		return "STARTTLS", nil
	case len(line) >= 8 && bytes.EqualFold(line[:8], []byte("STARTTLS")):
		return "", nil
	case len(line) == 4:
		return string(bytes.ToUpper(line)), nil
	case len(line) < 6 || line[4] != ' ':
		return "", nil
	}
	return string(bytes.ToUpper(line[:4])), bytes.TrimSpace(line[5:])
}

// bdatChunk is the size of the chunk that follows a BDAT command with these arguments, as
// go-smtp v0.26.0 reads it: "size [LAST]", size a 32-bit decimal. go-smtp refuses anything
// else with 501 and reads no chunk, so neither does the wrapper: the bytes after a refused BDAT
// are commands.
func bdatChunk(arg []byte) int64 {
	f := bytes.Fields(arg)
	if len(f) == 0 || len(f) > 2 || (len(f) == 2 && !bytes.EqualFold(f[1], []byte("LAST"))) {
		return 0
	}
	n, err := strconv.ParseUint(string(f[0]), 10, 32)
	if err != nil {
		return 0
	}
	return int64(n)
}

// errorLocked counts one error and reports whether the hard error limit is reached (Postfix's
// smtpd_hard_error_limit); the caller then says replyTooManyErrors. Caller holds mu.
func (c *slotConn) errorLocked() bool {
	if c.errs++; c.errs < c.set.hardErrors {
		return false
	}
	c.log.Info("closing session: too many errors", "errors", c.errs, "junk", c.junk, "stress", c.set.stress)
	c.srv.metrics.sessions.WithLabelValues(outcomeRejected).Inc()
	c.srv.sessionsRejected.Add(1)
	c.readShut = true
	return true
}

// Write passes go-smtp's replies through and watches them: a 354 starts the data phase, the
// next reply ends it, and 4xx/5xx replies count toward the hard error limit.
func (c *slotConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	shut := c.writeShut
	c.mu.Unlock()
	if shut {
		return len(b), nil
	}
	b = cleanReply(b)
	// go-smtp writes a multi-line reply (EHLO's) one line at a time; the lines are held until
	// the last one so the reply costs one write, not one per line.
	if isContinuation(b) && len(c.pending)+len(b) <= 4096 {
		c.pending = append(c.pending, b...)
		return len(b), nil
	}
	out := b
	if len(c.pending) > 0 {
		out = append(c.pending, c.advertiseTLS(c.pending, b)...)
		c.pending = c.pending[:0]
	}
	if c.holdingForTLS() {
		c.tlsHold = append(c.tlsHold, out...)
		if c.noteReplies(b) {
			c.sayLocked(sprintfLine(replyTooManyErrors, c.srv.cfg.Hostname))
		}
		return len(b), nil
	}
	n, err := c.writer().Write(out)
	n = max(n-(len(out)-len(b)), 0)
	// The 421 goes in line after the error reply, so the client reads them in order.
	if c.noteReplies(b) {
		c.sayLocked(sprintfLine(replyTooManyErrors, c.srv.cfg.Hostname))
	}
	return n, err
}

// isContinuation reports whether b ends with a reply line that another follows ("250-...").
func isContinuation(b []byte) bool {
	b = bytes.TrimSuffix(b, []byte("\r\n"))
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return len(b) >= 4 && b[3] == '-'
}

// noteReplies updates the session from the reply lines in b, and reports whether the error
// limit was reached.
func (c *slotConn) noteReplies(b []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := false
	for line := range bytes.Lines(b) {
		if len(line) < 4 || line[3] == '-' { // continuation lines of a multi-line reply
			continue
		}
		code, err := strconv.Atoi(string(line[:3]))
		if err != nil {
			continue
		}
		if code == 354 {
			c.dataMode, c.dataStart, c.lastRead, c.dataBytes = true, time.Now(), time.Now(), 0
			c.dstate = dataLineStart
			continue
		}
		c.dataMode = false
		// A 421 is go-smtp's own way out (timeouts); it needs no further 421.
		if code >= 400 && code != 421 && !c.readShut && c.errorLocked() {
			limit = true
		}
	}
	return limit
}

// goodbye says a last 421 and ends the session: no more reads, no more writes.
func (c *slotConn) goodbye(format string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.sayLocked(sprintfLine(format, c.srv.cfg.Hostname))
}

// goodbyeIfFree says the 421 unless a write is under way: one blocked on a client that does not
// read would hold the caller (a shutdown past its deadline) as long as the write deadline, and
// such a client would not read the 421 either.
func (c *slotConn) goodbyeIfFree(format string) {
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	c.sayLocked(sprintfLine(format, c.srv.cfg.Hostname))
}

// sayLocked writes line as the connection's last words. Caller holds wmu.
func (c *slotConn) sayLocked(line string) {
	c.mu.Lock()
	if c.writeShut {
		c.mu.Unlock()
		return
	}
	c.writeShut, c.readShut = true, true
	c.mu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
	// Replies held for a STARTTLS go first: the client reads them in order, the 421 last.
	last := append(c.tlsHold, line...)
	c.tlsHold = nil
	_, _ = c.writer().Write(last)
	// Half-close so the client reads the 421 before the end, even if it is still talking.
	c.closeWrite()
	// Wake a read blocked in go-smtp so that it sees EOF and closes. Under mu, so that it
	// cannot land before a linger's deadline and cut the linger short.
	c.mu.Lock()
	if !c.lingering {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
}

// wake makes a blocked read look again at whether the session must end (Shutdown).
func (c *slotConn) wake() { _ = c.Conn.SetReadDeadline(time.Now()) }

// cleanReply replaces the control characters inside one reply line with '?'. go-smtp copies
// the client's EHLO name and unknown verbs into its reply text, and a reply is text without
// control characters (RFC 5321 section 4.2); a NUL or a lone CR echoed back could confuse the
// client, or a log reading the dialogue. It keeps the length, so Write's count stays right.
//
// Only a write shaped like a reply line is touched ("250-...", "554 ...", ending in CRLF): the
// bytes of a TLS handshake pass through here too when STARTTLS was pipelined, and a TLS record
// never starts with three digits.
func cleanReply(b []byte) []byte {
	if !looksLikeReply(b) {
		return b
	}
	end := len(b) - 2
	var out []byte
	for i := range end {
		if ch := b[i]; ch < 0x20 || ch == 0x7f {
			if out == nil {
				out = bytes.Clone(b)
			}
			out[i] = '?'
		}
	}
	if out == nil {
		return b
	}
	return out
}

func looksLikeReply(b []byte) bool {
	if len(b) < 6 || !bytes.HasSuffix(b, []byte("\r\n")) || (b[3] != ' ' && b[3] != '-') {
		return false
	}
	for _, d := range b[:3] {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}

// Lingering close. Closing a socket whose receive queue holds unread bytes makes Linux send a
// reset at once, and the client's kernel then throws away what it had not yet handed to the
// client: the last replies of a pipelined group (RFC 2920 section 3.1 lets a client write the
// whole group before it reads), and the 421 that ended the session. So the socket is not closed
// at once: the slot is freed, our side is half-closed, and what the client still sends is read
// and thrown away until it closes too, for at most lingerTime and lingerBytes.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

// Close frees the slot exactly once and closes the socket after a linger. go-smtp calls it
// when its read loop has ended, so the linger is the only reader left.
func (c *slotConn) Close() error { return c.close(true) }

// closeNow frees the slot and closes the socket at once: Server.Close, and a shutdown past its
// deadline, where go-smtp may still be reading.
func (c *slotConn) closeNow() error { return c.close(false) }

func (c *slotConn) close(linger bool) error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		if !linger || !c.pool.startLinger(c) {
			err = c.Conn.Close()
			c.pool.release(c)
			c.srv.sessionEnded(c)
			return
		}
		// The session is over whatever the client does now: its slot goes back at once.
		c.pool.release(c)
		c.srv.sessionEnded(c)
		c.wmu.Lock()
		_ = c.Conn.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
		// go-smtp ended the session before it reached a pipelined STARTTLS (QUIT, or its own
		// error limit): the replies held for it are still owed.
		if len(c.tlsHold) > 0 {
			_, _ = c.writer().Write(c.tlsHold)
			c.tlsHold = nil
		}
		c.closeWrite()
		c.wmu.Unlock()
		err = nil
		go c.linger()
	})
	return err
}

// linger reads until the client closes, the linger time is up or the byte budget is spent,
// then closes the socket.
func (c *slotConn) linger() {
	defer c.pool.endLinger(c)
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, lingerBytes))
	_ = c.Conn.Close()
}

// Session-side notes, called from the go-smtp goroutine of this connection.
func (c *slotConn) setTxn(on bool) {
	c.mu.Lock()
	c.inTxn = on
	c.mu.Unlock()
}

func (c *slotConn) noteAccepted() {
	c.mu.Lock()
	c.accepted++
	c.mu.Unlock()
}

func (c *slotConn) saidEHLO() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ehlo
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sprintfLine(format, host string) string { return fmt.Sprintf(format, host) + "\r\n" }
