package mta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Reasons readMessage refuses a message.
var (
	errMessageNUL  = errors.New("message contains NUL bytes")
	errMessageLoop = errors.New("message has too many Received headers")
)

// DefaultHopcountLimit is Config.HopcountLimit's default: RFC 5321 section 6.3 suggests at
// least 100 hops before a message is taken to loop.
const DefaultHopcountLimit = 100

// readBufs are the read buffers of readMessage, reused: one per message would be most of the
// garbage an ingest flood makes.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readMessage reads a message body from go-smtp's dot-decoded reader, puts prefix (our
// Received header) in front and normalises every line end to CRLF: a bare LF or a bare CR
// becomes CRLF, so a lone CR is never relayed and "\n.\n" cannot end a message downstream
// (SMTP smuggling). NUL bytes are refused (RFC 5321 section 4.5.2 allows none in text).
//
// TODO: the whole message is held in memory until it is spooled (at most MaxMessageBytes per
// session); streaming large messages to a file of their own would bound memory per session.
func readMessage(r io.Reader, prefix []byte, maxBytes int64, maxHops int) ([]byte, error) {
	n := &normaliser{out: bytes.NewBuffer(make([]byte, 0, 8<<10)), inHeader: true}
	n.out.Write(prefix)
	n.lineStart = n.out.Len()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		k, err := r.Read(buf)
		n.write(buf[:k])
		if int64(n.out.Len()) > maxBytes+int64(len(prefix))+maxBytes/8 {
			// go-smtp caps the raw size; this bounds what normalising can add.
			_, _ = io.Copy(io.Discard, r)
			return nil, errTooBig
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	n.end()
	switch {
	case n.nul:
		return nil, errMessageNUL
	case n.received > maxHops:
		return nil, fmt.Errorf("%w: %d", errMessageLoop, n.received)
	}
	return n.out.Bytes(), nil
}

// normaliser rewrites line ends as bytes arrive and counts Received headers.
type normaliser struct {
	out       *bytes.Buffer
	cr        bool // the last byte was a CR not yet written
	nul       bool
	inHeader  bool
	lineStart int // offset in out of the current line
	received  int
}

func (n *normaliser) write(b []byte) {
	for len(b) > 0 {
		if n.cr {
			n.cr = false
			n.newline()
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := bytes.IndexAny(b, "\r\n\x00")
		if i < 0 {
			n.out.Write(b)
			return
		}
		n.out.Write(b[:i])
		switch b[i] {
		case '\r':
			n.cr = true
		case '\n':
			n.newline()
		case 0:
			n.nul = true
		}
		b = b[i+1:]
	}
}

// newline ends the current line with CRLF and looks at it while in the header section.
func (n *normaliser) newline() {
	if n.inHeader {
		line := n.out.Bytes()[n.lineStart:]
		switch {
		case len(line) == 0:
			n.inHeader = false
		case len(line) >= 9 && bytes.EqualFold(line[:9], []byte("received:")):
			n.received++
		}
	}
	n.out.WriteString("\r\n")
	n.lineStart = n.out.Len()
}

func (n *normaliser) end() {
	if n.cr {
		n.cr = false
		n.newline()
	}
}

// receivedHeader is the trace line RFC 5321 section 4.4 requires of every relay, with the
// RFC 3848 protocol name.
func (s *Server) receivedHeader(ss *session, id string, rcpts []string) []byte {
	proto := "SMTP"
	if ss.conn.saidEHLO() {
		proto = "ESMTP"
	}
	if ss.conn.inTLS() {
		proto += "S" // RFC 3848: ESMTPS, SMTP with STARTTLS
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (mtastress) with %s id %s", sanitizeHelo(ss.smtp.Hostname()),
		ss.conn.ip, s.cfg.Hostname, proto, id)
	if len(rcpts) == 1 {
		// Only a single recipient is named: more would disclose Bcc recipients.
		fmt.Fprintf(&b, "\r\n\tfor <%s>", rcpts[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	return b.Bytes()
}

// sanitizeHelo keeps the client's HELO name from breaking the header: printable ASCII only.
func sanitizeHelo(h string) string {
	b := []byte(h)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' {
			b[i] = '?'
		}
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return string(b)
}
