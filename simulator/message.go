package simulator

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// IDHeader carries each simulated message's unique id; the sink counts it to find lost and
// duplicated mail.
const IDHeader = "X-Mtastress-Id"

// filler is the body text; its lines never start with a dot, but renderMessage dot-stuffs
// anyway (RFC 5321 §4.5.2) so that a change here cannot break the framing.
const filler = "The quick brown fox jumps over the lazy dog while the spam run goes on and on"

// renderMessage builds a message of about m.Size bytes, dot-stuffed, CRLF line ends, without
// the final dot.
func renderMessage(p sessionPlan, m messagePlan, rcpts []string) []byte {
	var b bytes.Buffer
	from := p.Sender
	if from == "" {
		from = "MAILER-DAEMON@" + SenderDomain
	}
	fmt.Fprintf(&b, "Message-ID: <%s@sim.mtastress>\r\n", m.ID)
	fmt.Fprintf(&b, "%s: %s\r\n", IDHeader, m.ID)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", strings.Join(rcpts, ">, <"))
	fmt.Fprintf(&b, "Subject: simulated %s message %s\r\n", p.Profile, m.ID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	for b.Len() < m.Size {
		line := filler
		if strings.HasPrefix(line, ".") {
			line = "." + line
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}
