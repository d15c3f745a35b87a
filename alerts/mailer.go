package alerts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// ErrTLSRequired means the relay offered no STARTTLS, or it failed, and the config demands TLS.
var ErrTLSRequired = errors.New("alerts: relay offers no usable STARTTLS and TLS is required")

// DefaultSendTimeout bounds one delivery attempt: dial, dialogue and data.
const DefaultSendTimeout = 30 * time.Second

// Mailer sends alerts to one relay over SMTP, one attempt per Send; Service retries. It does not
// use go-smtp's SendMail, which refuses a relay without STARTTLS (MailHog has none).
type Mailer struct {
	Relay string   // host:port; alert mail never goes through the gateway it reports on
	From  string   // envelope and header sender
	To    []string // the admin addresses
	// HeloName is the name given in EHLO; "" means "localhost".
	HeloName string
	// RequireTLS refuses to send in plain text. Without it STARTTLS is used when offered, and
	// a failed handshake falls back to plain text, as opportunistic TLS does (RFC 7435).
	RequireTLS bool
	TLSConfig  *tls.Config
	Timeout    time.Duration // per attempt; 0 means DefaultSendTimeout
}

// Send delivers one alert. A rejection by the relay is an *smtp.SMTPError; Permanent says
// whether retrying can help.
func (m *Mailer) Send(ctx context.Context, a SendAlert) error {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	c, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(m.From, nil); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to, nil); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(a.Message(m.From, m.To)); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The relay's reply to the final dot is the moment the alert is delivered.
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	c.Quit() // the mail is accepted; a failed QUIT changes nothing
	return nil
}

// Permanent reports whether err is a 5xx reply: sending the same mail again will fail again.
func Permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500
}

// connect opens a greeted session, upgraded with STARTTLS when the relay offers it.
func (m *Mailer) connect(ctx context.Context) (*smtp.Client, error) {
	c, err := m.open(ctx, false)
	if err != nil {
		return nil, err
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		if m.RequireTLS {
			c.Close()
			return nil, ErrTLSRequired
		}
		return c, nil
	}
	// go-smtp v0.26 upgrades only a client it has not greeted yet, so the TLS session starts on
	// a second connection.
	// TODO: issue STARTTLS on the first connection once go-smtp exports it.
	c.Quit()
	tc, err := m.open(ctx, true)
	if err == nil {
		return tc, nil
	}
	if m.RequireTLS {
		return nil, fmt.Errorf("%w: %v", ErrTLSRequired, err)
	}
	return m.open(ctx, false)
}

// open dials the relay and says EHLO, with or without STARTTLS first. The connection is closed
// when ctx ends, which bounds every command.
func (m *Mailer) open(ctx context.Context, startTLS bool) (*smtp.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Relay)
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", m.Relay, err)
	}
	context.AfterFunc(ctx, func() { conn.Close() })

	var c *smtp.Client
	if startTLS {
		if c, err = smtp.NewClientStartTLS(conn, m.tlsConfig()); err != nil {
			return nil, fmt.Errorf("relay %s: STARTTLS: %w", m.Relay, err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	name := m.HeloName
	if name == "" {
		name = "localhost"
	}
	if err := c.Hello(name); err != nil {
		c.Close()
		return nil, fmt.Errorf("relay %s: EHLO: %w", m.Relay, err)
	}
	return c, nil
}

func (m *Mailer) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if m.TLSConfig != nil {
		cfg = m.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(m.Relay)
	}
	return cfg
}
