package mta

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mtastress/mtastress/events"
)

// Errors New can return; match them with errors.Is.
var (
	// ErrInvalidConfig wraps every validation failure; the message names the field.
	ErrInvalidConfig = errors.New("mta: invalid config")
	// ErrServerClosed is returned by Serve, Shutdown and Close once the server is closed.
	ErrServerClosed = errors.New("mta: server closed")
)

// Clock is the time the stress machine and events read. The simulator's shared clock satisfies
// it; SMTP timeouts and delivery retries always use real time.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// EventSink receives load samples and stress transitions. *events.Publisher satisfies it. Its
// methods must not block: they are called with the slot lock held, so that transitions arrive
// in the order they happened.
type EventSink interface {
	Sample(events.LoadSample)
	Entered(events.StressTransition)
	Exited(events.StressTransition)
}

// Config is everything a Server needs. Start from DefaultConfig and set the node's fields.
type Config struct {
	// Node, Cluster, Model and Limit name the node in events and metrics. Limit is the model's
	// process limit: the number of SMTP sessions served at once.
	Node, Cluster, Model string
	Limit                int

	// Hostname is the name in the greeting, in Received headers, and of bounces' sender.
	Hostname string
	// Domains are the recipient domains this gateway accepts mail for (from anyone).
	Domains []string
	// Users, if set, are the valid local parts in Domains; others get 550 5.1.1. Empty: any
	// local part is accepted. postmaster is always accepted (RFC 5321 section 4.5.1).
	Users []string
	// RelayNetworks may send to domains other than Domains. Empty by default: loopback is not
	// trusted unless listed, so a default install is no open relay.
	RelayNetworks []netip.Prefix
	// ProxyFrom are the load balancers that may connect to a listener served with
	// ServeProxy; everyone else is refused there.
	ProxyFrom []netip.Prefix

	// Relay is the default next hop, host:port, for every recipient domain not in Transports.
	Relay string
	// Transports maps a recipient domain (lower case) to its own next hop, host:port.
	Transports map[string]string
	// HopTLS is the STARTTLS policy of a next hop (host:port, as in Relay and Transports);
	// a hop not named gets opportunistic TLS. RootCAs verifies hops whose policy asks for
	// it; nil: the system's roots.
	HopTLS  map[string]TLSPolicy
	RootCAs *x509.CertPool

	// TLSCertFile and TLSKeyFile, PEM, enable inbound STARTTLS (RFC 3207); both or neither.
	// Reload reads them again, so a renewed certificate is served to the next handshake.
	TLSCertFile, TLSKeyFile string

	// SpoolDir holds the queue, and the current stress episode beside it.
	SpoolDir string
	// SpoolMaxBytes caps the bytes of queued mail; past it, new mail gets 451 4.3.0. 0: no cap.
	SpoolMaxBytes int64
	// MinFreeBytes is the free disk the spool keeps; below it, new mail gets 452 4.3.1. 0: no check.
	MinFreeBytes int64

	// SlotWait is how long a connection over the limit waits for a slot, greeting held back.
	SlotWait time.Duration
	// WaitMax caps the connections waiting for a slot; 0 means 4 × Limit.
	WaitMax int
	// Cooldown is how long active must stay below the limit before stress ends; 0 ends it at
	// the first free slot.
	Cooldown time.Duration
	// ClientCap caps the connections one client address holds or waits for; 0 means Limit/2
	// (at least 1).
	ClientCap int

	// CommandTimeout and StressCommandTimeout bound the wait for each command (and, with
	// MinDataRate, for the message data), for sessions that started outside and inside stress.
	CommandTimeout, StressCommandTimeout time.Duration
	// MinDataRate, bytes per second, extends the DATA deadline as bytes arrive, so a client
	// that trickles its message cannot hold a slot (Postfix's smtpd_min_data_rate).
	MinDataRate int
	// HardErrorLimit and StressHardErrorLimit: error replies after which a session is closed.
	HardErrorLimit, StressHardErrorLimit int
	// JunkLimit and StressJunkLimit: NOOP, RSET, VRFY and HELO/EHLO commands a session may send
	// before each further one counts as an error.
	JunkLimit, StressJunkLimit int

	// RateLimits caps connections (421 4.7.0), messages and recipients (450 4.7.1) per client
	// address and minute. Off by default, as in Postfix.
	RateLimits RateLimits

	// MaxMessageBytes and MaxRecipients limit one message (552 5.3.4, 452 4.5.3).
	MaxMessageBytes int64
	MaxRecipients   int
	// HopcountLimit is how many Received: headers a message may carry; one more and it is
	// taken to loop (554 5.4.6). Postfix's hopcount_limit; RFC 5321 section 6.3 asks for at
	// least 100.
	HopcountLimit int

	// DeliveryWorkers is how many messages are relayed at once.
	DeliveryWorkers int
	// DeliveryTimeout bounds each command of an outbound session, and the dial.
	DeliveryTimeout time.Duration
	// RetryMin and RetryMax bound the jittered exponential backoff after a temporary failure;
	// GiveUp is how long after its arrival a message is bounced instead of retried.
	RetryMin, RetryMax, GiveUp time.Duration

	// SampleInterval is how often a load sample is published.
	SampleInterval time.Duration

	// Clock stamps stress transitions; nil is real time. Events receives them; nil drops them.
	Clock  Clock
	Events EventSink
	// Logger gets the operator log and the mail log (lines with log=mail); nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults, which follow Postfix where it has a matching setting.
func DefaultConfig() Config {
	return Config{
		Hostname: "localhost",
		SlotWait: 30 * time.Second,
		Cooldown: 30 * time.Second,
		// Postfix smtpd_timeout 300 s, 10 s under stress (smtpd_timeout = ${stress?10}${stress:300}s).
		CommandTimeout:       300 * time.Second,
		StressCommandTimeout: 10 * time.Second,
		MinDataRate:          500, // Postfix smtpd_min_data_rate
		// Postfix smtpd_hard_error_limit 20 → 1, smtpd_junk_command_limit 100 → 1 under stress.
		HardErrorLimit:       20,
		StressHardErrorLimit: 1,
		JunkLimit:            100,
		StressJunkLimit:      1,
		MaxMessageBytes:      10 << 20, // Postfix message_size_limit is 10 240 000
		MaxRecipients:        1000,     // Postfix smtpd_recipient_limit
		HopcountLimit:        DefaultHopcountLimit,
		DeliveryWorkers:      8,
		DeliveryTimeout:      60 * time.Second,
		// Postfix minimal_backoff_time 300 s, maximal_backoff_time 4000 s, maximal_queue_lifetime 5 d.
		RetryMin:       300 * time.Second,
		RetryMax:       4000 * time.Second,
		GiveUp:         5 * 24 * time.Hour,
		SampleInterval: time.Second,
	}
}

// withDerived fills the values that default from others.
func (c Config) withDerived() Config {
	if c.WaitMax == 0 {
		c.WaitMax = 4 * c.Limit
	}
	if c.ClientCap == 0 {
		c.ClientCap = max(c.Limit/2, 1)
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// Copy before normalising: the caller's slice is not ours to change.
	c.Domains = slices.Clone(c.Domains)
	for i, d := range c.Domains {
		c.Domains[i] = strings.ToLower(d)
	}
	return c
}

// validate checks a config after withDerived. Each failure names the field to change.
func (c Config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if err := events.ValidName(c.Node); err != nil {
		return bad("node: %v", err)
	}
	if err := events.ValidName(c.Cluster); err != nil {
		return bad("cluster: %v", err)
	}
	switch {
	case c.Limit <= 0:
		return bad("limit must be positive, got %d", c.Limit)
	case c.Hostname == "" || strings.ContainsAny(c.Hostname, " \r\n\t"):
		return bad("hostname %q must be a name without spaces", c.Hostname)
	case c.SpoolDir == "":
		return bad("spool directory is required")
	case c.SlotWait <= 0:
		return bad("slot wait must be positive, got %v", c.SlotWait)
	case c.WaitMax < 0:
		return bad("wait max must not be negative, got %d", c.WaitMax)
	case c.Cooldown < 0:
		return bad("cooldown must not be negative, got %v", c.Cooldown)
	case c.ClientCap < 0:
		return bad("client cap must not be negative, got %d", c.ClientCap)
	case c.CommandTimeout <= 0 || c.StressCommandTimeout <= 0:
		return bad("command timeouts must be positive, got %v and %v", c.CommandTimeout, c.StressCommandTimeout)
	case c.MinDataRate < 0:
		return bad("min data rate must not be negative, got %d", c.MinDataRate)
	case c.HardErrorLimit <= 0 || c.StressHardErrorLimit <= 0:
		return bad("hard error limits must be positive, got %d and %d", c.HardErrorLimit, c.StressHardErrorLimit)
	case c.JunkLimit < 0 || c.StressJunkLimit < 0:
		return bad("junk command limits must not be negative, got %d and %d", c.JunkLimit, c.StressJunkLimit)
	case c.MaxMessageBytes <= 0 || c.MaxRecipients <= 0:
		return bad("max message bytes and max recipients must be positive")
	case c.HopcountLimit <= 0:
		return bad("hopcount limit must be positive, got %d", c.HopcountLimit)
	case c.DeliveryWorkers <= 0 || c.DeliveryTimeout <= 0:
		return bad("delivery workers and delivery timeout must be positive")
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return bad("retry backoff needs 0 < retry min ≤ retry max, got %v and %v", c.RetryMin, c.RetryMax)
	case c.GiveUp <= 0:
		return bad("give up must be positive, got %v", c.GiveUp)
	case c.SampleInterval <= 0:
		return bad("sample interval must be positive, got %v", c.SampleInterval)
	case c.SpoolMaxBytes < 0 || c.MinFreeBytes < 0:
		return bad("spool max bytes and min free bytes must not be negative")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return bad("tls_cert_file and tls_key_file go together: give both or neither")
	}
	return c.validateRouting()
}

func (c Config) validateRouting() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if err := checkHostPort(c.Relay); err != nil {
		return bad("relay: %v", err)
	}
	for d, hop := range c.Transports {
		if d != strings.ToLower(d) || !validDomain(d) {
			return bad("transport domain %q must be a lower-case domain name", d)
		}
		if err := checkHostPort(hop); err != nil {
			return bad("transport for %s: %v", d, err)
		}
	}
	for hop := range c.HopTLS {
		if err := checkHostPort(hop); err != nil {
			return bad("TLS policy for hop %q: %v", hop, err)
		}
	}
	for _, d := range c.Domains {
		if !validDomain(d) {
			return bad("domain %q is not a domain name", d)
		}
	}
	for _, p := range c.RelayNetworks {
		if !p.IsValid() {
			return bad("relay network %v is not valid", p)
		}
	}
	return c.RateLimits.validate()
}

func (r RateLimits) validate() error {
	if r.ConnectionsPerMinute < 0 || r.MessagesPerMinute < 0 || r.RecipientsPerMinute < 0 {
		return fmt.Errorf("%w: rate limits must not be negative", ErrInvalidConfig)
	}
	for _, p := range r.Exempt {
		if !p.IsValid() {
			return fmt.Errorf("%w: rate limit exempt network %v is not valid", ErrInvalidConfig, p)
		}
	}
	return nil
}

func checkHostPort(s string) error {
	if s == "" {
		return errors.New("host:port is required")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" || port == "" {
		return fmt.Errorf("%q needs both host and port", s)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is not a port number (0 to 65535) or a service name", port)
	}
	return nil
}
