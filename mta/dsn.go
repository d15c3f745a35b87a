package mta

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Delivery status notifications (RFC 3464): a multipart/report to the sender naming each failed
// recipient, the reason and the original headers.

// bounce tells q's sender that the recipients in failed will not get it. Mail from the null
// sender is never bounced (RFC 5321 section 4.5.5): that is how bounce loops are avoided.
func (s *Server) bounce(q *queued, failed []rcptResult) error {
	if q.env.From == "" {
		for _, r := range failed {
			s.mailBounced(q, r, "")
		}
		return nil
	}
	id := s.nextQueueID()
	now := time.Now()
	body := s.buildDSN(id, q, failed, now)
	// RFC 3464 section 2: a DSN goes from the null sender.
	env := envelope{ID: id, From: "", To: []string{q.env.From}, Received: now}
	// The original headers it quotes may be 8-bit: then so is the bounce.
	env.EightBit = has8bit(body)
	if err := s.enqueue(env, body, nil); err != nil {
		return err
	}
	for _, r := range failed {
		s.mailBounced(q, r, id)
	}
	return nil
}

func (s *Server) buildDSN(id string, q *queued, failed []rcptResult, now time.Time) []byte {
	host := s.cfg.Hostname
	boundary := id + "/" + host
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }

	w("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	w("To: <%s>", q.env.From)
	w("Subject: Undelivered Mail Returned to Sender")
	w("Date: %s", now.Format(time.RFC1123Z))
	w("Message-ID: <%s@%s>", id, host)
	w("Auto-Submitted: auto-replied") // RFC 3834 section 5: no auto-reply to this
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"", boundary)
	w("")

	// Part 1: for the person who sent it.
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	w("This is the mail system at host %s.", host)
	w("")
	w("Your message could not be delivered to one or more recipients. It is attached below.")
	w("")
	for _, r := range failed {
		w("<%s>: %s", q.env.To[r.idx], diagnostic(r))
	}
	w("")

	// Part 2: for programs (RFC 3464 section 2.2 and 2.3).
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", host)
	w("X-Mtastress-Queue-ID: %s", q.env.ID)
	w("Arrival-Date: %s", q.env.Received.Format(time.RFC1123Z))
	for _, r := range failed {
		w("")
		w("Final-Recipient: rfc822; %s", q.env.To[r.idx])
		w("Action: failed")
		w("Status: %s", dsnStatus(r))
		if r.code != 0 {
			if h, _, err := net.SplitHostPort(r.hop); err == nil {
				w("Remote-MTA: dns; %s", h)
			}
			w("Diagnostic-Code: smtp; %s", diagnostic(r))
		} else {
			w("Diagnostic-Code: X-mtastress; %s", diagnostic(r))
		}
		w("Last-Attempt-Date: %s", now.Format(time.RFC1123Z))
	}
	w("")

	// Part 3: the original headers (RFC 6522's text/rfc822-headers), not the body.
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	hdr, err := s.spool.headers(q)
	if err != nil {
		// The bounce still goes, without the headers: the sender learns of the failure.
		s.spoolReadFailed(q, err)
	}
	b.Write(hdr)
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}

// dsnStatus is the RFC 3463 status of a failed recipient.
func dsnStatus(r rcptResult) string {
	switch {
	case r.expired:
		return "4.4.7" // RFC 3463: delivery time expired
	case r.enh != smtp.EnhancedCode{} && r.enh != smtp.NoEnhancedCode:
		return fmt.Sprintf("%d.%d.%d", r.enh[0], r.enh[1], r.enh[2])
	case r.code/100 == 4:
		return "4.0.0"
	}
	return "5.0.0"
}

// diagnostic is the reply text on one line, as a header field needs it.
func diagnostic(r rcptResult) string {
	text := strings.Join(strings.Fields(r.text), " ")
	if r.code == 0 {
		return text
	}
	if r.expired {
		return fmt.Sprintf("%d %s (gave up retrying)", r.code, text)
	}
	return fmt.Sprintf("%d %s", r.code, text)
}
