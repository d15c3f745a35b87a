package simulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// sessionResult is what one client session saw.
type sessionResult struct {
	Served     bool // got a 220 greeting
	Tempfailed bool // answered any 421
	Rejected   bool // refused with a 5xx and had no message accepted
	Accepted   []acceptedMessage
	Wait       time.Duration // from connect to greeting: the slot wait, as the client sees it
	Latency    time.Duration // from the intended start to the end of the session
	Err        error         // a transport failure, not a reply
}

type acceptedMessage struct {
	ID    string
	Rcpts []string
}

// errTempfail ends a session that was answered 421.
var errTempfail = errors.New("421 from server")

// client speaks raw SMTP, because the profiles need control that a client library hides: data
// dripped a byte at a time, commands sent before the greeting, a silent hold before QUIT.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	res  *sessionResult
	// replyTimeout bounds each wait for a reply after the greeting.
	replyTimeout time.Duration
}

// clientTiming are the real-time bounds of a client session.
type clientTiming struct {
	GreetingTimeout time.Duration // slot wait plus slack: the greeting is held while waiting
	ReplyTimeout    time.Duration
	MaxSession      time.Duration // hard bound on one session
	// BindClients dials from each session's own 127.0.0.0/8 address; only on loopback targets.
	BindClients bool
}

// runSession plays one planned session against addr. intended is the session's intended start
// in real time: latency is measured from it, so an overloaded server cannot hide delay.
func runSession(ctx context.Context, addr string, p sessionPlan, intended time.Time, tm clientTiming) (res sessionResult) {
	defer func() { res.Latency = time.Since(intended) }()

	ctx, cancel := context.WithTimeout(ctx, tm.MaxSession)
	defer cancel()
	d := net.Dialer{Timeout: 5 * time.Second}
	if tm.BindClients {
		d.LocalAddr = &net.TCPAddr{IP: p.Client.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.Err = fmt.Errorf("connect: %w", err)
		return res
	}
	defer conn.Close()
	// Closing the connection is how the context's end interrupts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c := &client{conn: conn, r: bufio.NewReader(conn), res: &res, replyTimeout: tm.ReplyTimeout}
	connected := time.Now()
	if err := c.dialogue(p, tm, connected); err != nil && !errors.Is(err, errTempfail) && res.Err == nil {
		res.Err = err
	}
	// A session counts as rejected only when a 5xx left it with nothing accepted.
	res.Rejected = res.Rejected && len(res.Accepted) == 0
	return res
}

func (c *client) dialogue(p sessionPlan, tm clientTiming, connected time.Time) error {
	if p.Pregreet {
		// A bot talks before the greeting; the server must not be fooled into answering early.
		if err := c.send("EHLO bot.%s", SenderDomain); err != nil {
			return err
		}
	}
	code, err := c.reply(tm.GreetingTimeout)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	greeted := time.Now()
	c.res.Wait = greeted.Sub(connected)
	if code != 220 {
		return c.refused(code)
	}
	c.res.Served = true

	if !p.Pregreet {
		if err := c.send("EHLO client.%s", SenderDomain); err != nil {
			return err
		}
	}
	if code, err := c.reply(c.replyTimeout); err != nil || code != 250 {
		return c.failed("EHLO", code, err)
	}
	for _, m := range p.Messages {
		if err := c.message(p, m); err != nil {
			return err
		}
	}
	if p.Hold > 0 {
		// The hold counts from the greeting: a client that waited for its slot still keeps it
		// for the whole hold once it has it (DESIGN.md "Scenario files").
		if err := c.hold(greeted.Add(p.Hold)); err != nil {
			return err
		}
	}
	if err := c.send("QUIT"); err != nil {
		return err
	}
	_, _ = c.reply(c.replyTimeout)
	return nil
}

// message runs one mail transaction. A refused sender or recipients is not a transport error.
func (c *client) message(p sessionPlan, m messagePlan) error {
	if err := c.send("MAIL FROM:<%s>", p.Sender); err != nil {
		return err
	}
	code, err := c.reply(c.replyTimeout)
	if err != nil || code != 250 {
		return c.failed("MAIL", code, err)
	}
	var ok []string
	for _, r := range m.Rcpts {
		if err := c.send("RCPT TO:<%s>", r); err != nil {
			return err
		}
		code, err := c.reply(c.replyTimeout)
		if err != nil || code == 421 {
			return c.failed("RCPT", code, err)
		}
		if code == 250 || code == 251 {
			ok = append(ok, r)
		} else if code >= 500 {
			c.res.Rejected = true
		}
	}
	if len(ok) == 0 {
		if err := c.send("RSET"); err != nil {
			return err
		}
		code, err := c.reply(c.replyTimeout)
		return c.failed("RSET", code, err)
	}
	if err := c.send("DATA"); err != nil {
		return err
	}
	if code, err := c.reply(c.replyTimeout); err != nil || code != 354 {
		return c.failed("DATA", code, err)
	}
	if err := c.body(p, m, ok); err != nil {
		return err
	}
	code, err = c.reply(c.replyTimeout)
	if err != nil || code != 250 {
		return c.failed("end of data", code, err)
	}
	c.res.Accepted = append(c.res.Accepted, acceptedMessage{ID: m.ID, Rcpts: ok})
	return nil
}

// body sends the message and the final dot, at full speed or dripped.
func (c *client) body(p sessionPlan, m messagePlan, rcpts []string) error {
	data := append(renderMessage(p, m, rcpts), ".\r\n"...)
	if p.Drip == nil {
		c.conn.SetWriteDeadline(time.Now().Add(c.replyTimeout))
		_, err := c.conn.Write(data)
		return err
	}
	step := max(p.Drip.BytesPer, 1)
	for len(data) > 0 {
		n := min(step, len(data))
		c.conn.SetWriteDeadline(time.Now().Add(c.replyTimeout))
		if _, err := c.conn.Write(data[:n]); err != nil {
			return fmt.Errorf("drip: %w", err)
		}
		data = data[n:]
		if len(data) > 0 && c.closedWithin(p.Drip.Per) {
			return c.failed("drip", 421, nil)
		}
	}
	return nil
}

// closedWithin waits d for the server to speak; a server that cuts a slow client off sends a
// 421 or closes, and either ends the drip.
func (c *client) closedWithin(d time.Duration) bool {
	c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := c.r.Peek(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// hold keeps the session silent until until; under stress settings the server's shorter command
// timeout cuts it, and that is the point.
func (c *client) hold(until time.Time) error {
	if time.Until(until) <= 0 {
		return nil
	}
	if c.closedWithin(time.Until(until)) {
		code, err := c.reply(time.Second)
		return c.failed("hold", code, err)
	}
	return nil
}

// refused records a greeting that is not 220.
func (c *client) refused(code int) error {
	if code == 421 {
		c.res.Tempfailed = true
		return errTempfail
	}
	if code >= 500 {
		c.res.Rejected = true
	}
	return fmt.Errorf("greeting %d", code)
}

// failed records a reply that ends the dialogue, or returns nil when the reply lets it go on.
func (c *client) failed(step string, code int, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", step, err)
	case code == 421:
		c.res.Tempfailed = true
		return errTempfail
	case code >= 500:
		c.res.Rejected = true
		return nil
	case code >= 400:
		return nil
	}
	return nil
}

func (c *client) send(format string, args ...any) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.replyTimeout))
	_, err := fmt.Fprintf(c.conn, format+"\r\n", args...)
	return err
}

// reply reads one (possibly multi-line) reply and returns its code.
func (c *client) reply(timeout time.Duration) (int, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return 0, fmt.Errorf("connection closed: %w", err)
			}
			return 0, err
		}
		if len(line) < 4 {
			return 0, fmt.Errorf("short reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, fmt.Errorf("bad reply %q", strings.TrimSpace(line))
		}
		if line[3] != '-' {
			return code, nil
		}
	}
}
