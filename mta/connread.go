package mta

import (
	"bytes"
	"errors"
	"io"
	"time"
)

// The read side of slotConn. Every byte go-smtp reads in the clear passes through feedLocked,
// which keeps the wrapper's idea of the dialogue in step with go-smtp's:
//
//   - in command mode it counts junk commands, and stops after a DATA line: the bytes after it
//     wait until go-smtp has answered, so they are looked at as message data after a 354 and
//     as commands after a refusal, never as both (a body sent before the 354 no longer counts
//     as junk commands, nor slips past the data checks below);
//   - in data mode it finds the end of the data as RFC 5321 section 4.1.1.4 defines it, stops
//     there, and rewrites two bare-CR patterns that go-smtp v0.26.0's data reader gets wrong
//     (see feedDataLocked), so that go-smtp ends the data exactly where the RFC does.
//
// After STARTTLS the same holds: the wrapper runs TLS itself (starttls.go), so what it looks at
// is always plain text.

// Read applies this session's deadline, looks at what the client sent, and ends the session
// when told.
func (c *slotConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if err := c.startTLSIfDue(); err != nil {
			return 0, io.EOF
		}
		n, stop := c.serve(b)
		if stop {
			c.goodbye(replyTooManyErrors)
			return 0, io.EOF
		}
		if n > 0 {
			return n, nil
		}
		dl, stop := c.prepareRead()
		if stop {
			return 0, c.cutShort(io.EOF)
		}
		n, err := c.reader().Read(b)
		if n > 0 {
			c.mu.Lock()
			c.in = append(c.in, b[:n]...)
			c.mu.Unlock()
			continue
		}
		if err == nil {
			return 0, nil
		}
		if !isTimeout(err) {
			return 0, c.cutShort(err)
		}
		if time.Now().Before(dl) {
			continue // woken early by Shutdown, which moves the deadline: look again
		}
		return 0, c.timedOut()
	}
}

// cutShort is the error a read ends with: inside a BDAT chunk, errChunkCut for an end of the
// input, because go-smtp copies a chunk with io.Copy, which takes io.EOF for the chunk's end
// and would queue the part received as the whole message. Once: the chunk is dead then, and
// later reads end as any other.
func (c *slotConn) cutShort(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bdatSkip > 0 && errors.Is(err, io.EOF) {
		c.bdatSkip = 0
		return errChunkCut
	}
	return err
}

// serve moves looked-at bytes into b, looking at more of the input when none are ready. It
// reports whether the session must end now (too many errors).
func (c *slotConn) serve(b []byte) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.out) == 0 && len(c.in) > 0 {
		nin, stop := c.feedLocked(c.in)
		if stop {
			c.in, c.out = nil, nil
			return 0, true
		}
		c.in = c.in[:copy(c.in, c.in[nin:])]
		if nin == 0 {
			break // the start of a command line, waiting for its end
		}
	}
	n := copy(b, c.out)
	c.out = c.out[:copy(c.out, c.out[n:])]
	return n, false
}

// feedLocked looks at the input src, appends what go-smtp is to read to c.out, and returns how
// much of src it used. It stops early where the mode may change: after a DATA line, and at the
// end of the data. Caller holds mu.
func (c *slotConn) feedLocked(src []byte) (int, bool) {
	c.lastRead = time.Now()
	if c.dataMode {
		n := c.feedDataLocked(src)
		c.dataBytes += int64(n)
		return n, false
	}
	return c.feedCommandsLocked(src)
}

// feedCommandsLocked passes command lines through, classifying each complete one. Caller holds
// mu.
func (c *slotConn) feedCommandsLocked(src []byte) (int, bool) {
	nin := 0
	for nin < len(src) {
		rest := src[nin:]
		if c.bdatSkip > 0 {
			// A BDAT chunk is message data, not commands.
			n := min(c.bdatSkip, int64(len(rest)))
			c.bdatSkip -= n
			c.out = append(c.out, rest[:n]...)
			nin += int(n)
			continue
		}
		i := bytes.IndexByte(rest, '\n')
		part := rest
		if i >= 0 {
			part = rest[:i+1]
		} else if len(c.verb) == 0 && len(rest) < verbMax {
			// The start of a command line waits for its end, so that go-smtp only ever reads
			// whole lines: a line such as STARTTLS, which is not passed on, is never half
			// passed on already, and a timeout never leaves go-smtp a fragment to run.
			break
		}
		if room := verbMax - len(c.verb); room > 0 {
			c.verb = append(c.verb, part[:min(room, len(part))]...)
		}
		c.out = append(c.out, part...)
		nin += len(part)
		if i < 0 {
			break
		}
		if c.commandLocked() {
			return nin, true
		}
		if c.dataAsked {
			c.dataAsked = false
			return nin, false // the rest waits for DATA's reply
		}
		if c.tlsStep == tlsAsked {
			// go-smtp gets RSET in its place, which resets the transaction as RFC 3207 section
			// 4.2 asks; its reply is replaced by our 220 (starttls.go). Nothing may follow
			// STARTTLS before the handshake: what this read holds after it was sent in the
			// clear and is thrown away, so it can never pass as the encrypted client's.
			c.out = append(c.out[:len(c.out)-len(part)], "RSET\r\n"...)
			if dropped := len(src) - nin; dropped > 0 {
				c.log.Info("bytes after STARTTLS thrown away", "bytes", dropped)
			}
			return len(src), false
		}
	}
	return nin, false
}

// verbMax is how much of a command line is kept, and how long a partial line may wait for its
// end: go-smtp's line limit (server.go, MaxLineLength 2000) and the CRLF. A partial line that
// long goes on to go-smtp, which refuses it as too long.
const verbMax = 2002

// dataState is where the data reader is in a line of message data.
type dataState uint8

const (
	dataLineStart dataState = iota // after <CRLF>, or at the start of the data
	dataDot                        // a '.' opened the line; not yet passed on
	dataDotCR                      // ".\r" opened the line; not yet passed on
	dataCR                         // after a CR
	dataMid                        // inside a line
)

// feedDataLocked passes message data on to go-smtp's data reader, and returns how much of src
// it used: all of it, or up to and including the end of the data.
//
// The end of the data is <CRLF>.<CRLF> and nothing else (RFC 5321 section 4.1.1.4); a line
// starts only after a CRLF, and a dot that opens a line is dropped. go-smtp v0.26.0 agrees
// except after bare CRs: its reader treats a CR that follows a bare CR as mid-line, and after
// ".\r" at a line's start it drops the CR and treats the next byte as mid-line. Both make it
// miss a real end of data (the session then stalls until the command timeout). So:
//
//   - a CR that follows a CR gets an LF before it: go-smtp then starts a line there and is in
//     step again. The message is the same either way, since the session turns a bare CR into
//     CRLF before queueing (message.go);
//   - a line that opens with ".\r" and then anything but LF loses its dot here, as the RFC
//     drops it, and its CR is passed on at the line's start, where go-smtp reads it right.
//
// Neither can make an end of data: an LF is put only between two CRs, and a dot is taken only
// when no LF follows its CR. Caller holds mu.
func (c *slotConn) feedDataLocked(src []byte) int {
	for i := 0; i < len(src); i++ {
		ch := src[i]
		switch c.dstate {
		case dataLineStart:
			switch ch {
			case '.':
				c.dstate = dataDot
				continue // held until the next byte says what it is
			case '\r':
				c.dstate = dataCR
			default:
				c.dstate = dataMid
			}
			c.out = append(c.out, ch)
		case dataDot:
			if ch == '\r' {
				c.dstate = dataDotCR
				continue
			}
			c.out = append(c.out, '.', ch) // go-smtp drops the dot, as it should
			c.dstate = dataMid
		case dataDotCR:
			if ch == '\n' {
				c.out = append(c.out, '.', '\r', '\n')
				c.dstate = dataLineStart
				return i + 1 // the end of the data: what follows are commands
			}
			c.out = append(c.out, '\r')
			c.dstate = dataCR
			i-- // ch comes after a CR; look at it again
		case dataCR:
			switch ch {
			case '\n':
				c.dstate = dataLineStart
			case '\r':
				c.out = append(c.out, '\n')
			default:
				c.dstate = dataMid
			}
			c.out = append(c.out, ch)
		case dataMid:
			if ch == '\r' {
				c.dstate = dataCR
			}
			c.out = append(c.out, ch)
		}
	}
	return len(src)
}
