package mta

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRecipientPolicy(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Users = []string{"user1", "user2"}
	s, addr := startServer(t, cfg)

	trusted := testConfig(t, "127.0.0.1:1")
	trusted.RelayNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	_, trustedAddr := startServer(t, trusted)

	cases := []struct {
		name, addr, rcpt, want string
	}{
		{"a valid user of a local domain is accepted", addr, "<user1@example.test>", "250 "},
		{"the domain matches case-insensitively", addr, "<USER2@Example.Test>", "250 "},
		{"postmaster without a domain is accepted", addr, "<postmaster>", "250 "},
		{"postmaster of a local domain is accepted even if not a listed user", addr, "<postmaster@example.test>", "250 "},
		{"an unknown user gets 550 5.1.1", addr, "<nobody@example.test>", "550 5.1.1 "},
		{"another domain from an untrusted client is relay denied", addr, "<x@elsewhere.example>", "554 5.7.1 "},
		{"loopback is not trusted unless listed", addr, "<x@localhost>", "554 5.7.1 "},
		{"another domain from a relay network is accepted", trustedAddr, "<x@elsewhere.example>", "250 "},
		{"the percent hack is refused", addr, "<x%elsewhere.example@example.test>", "553 5.1.3 "},
		{"a bang path is refused", addr, "<elsewhere.example!x@example.test>", "553 5.1.3 "},
		{"a quoted local part holding an @ is refused", addr, `<"x@elsewhere.example"@example.test>`, "553 5.1.3 "},
		{"a trailing dot is refused", addr, "<user1@example.test.>", "553 5.1.3 "},
		{"an address literal is refused", addr, "<user1@[127.0.0.1]>", "553 5.1.3 "},
		// go-smtp drops the route before the session sees it; the final mailbox then meets the
		// policy like any other, so the route cannot relay.
		{"a source route to another domain is relay denied", addr, "<@example.test:x@elsewhere.example>", "554 5.7.1 "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := greeted(t, c.addr)
			expect(t, "MAIL", cl.cmd("MAIL FROM:<sender@example.net>"), "250 ")
			expect(t, "RCPT TO:"+c.rcpt, cl.cmd("RCPT TO:%s", c.rcpt), c.want)
		})
	}
	if got := metricValue(t, s, "mtastress_mta_rejections_total", "code", "554"); got < 3 {
		t.Errorf("rejections with 554 counted %v, want at least 3", got)
	}
}

func TestProtocolLimits(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.MaxRecipients, cfg.MaxMessageBytes = 2, 1000
	_, addr := startServer(t, cfg)

	t.Run("a recipient over the limit gets 452 4.5.3", func(t *testing.T) {
		c := greeted(t, addr)
		expect(t, "MAIL", c.cmd("MAIL FROM:<sender@example.net>"), "250 ")
		expect(t, "RCPT 1", c.cmd("RCPT TO:<a@example.test>"), "250 ")
		expect(t, "RCPT 2", c.cmd("RCPT TO:<b@example.test>"), "250 ")
		expect(t, "RCPT 3", c.cmd("RCPT TO:<c@example.test>"), "452 4.5.3 ")
	})

	t.Run("a message over the size limit gets 552 5.3.4", func(t *testing.T) {
		c := greeted(t, addr)
		got := c.sendMessage("sender@example.net", []string{"a@example.test"}, message("big")+strings.Repeat(strings.Repeat("x", 500)+"\r\n", 4))
		expect(t, "final dot", got, "552 5.3.4 ")
	})

	t.Run("a line over 2000 octets gets 554 5.6.0", func(t *testing.T) {
		c := greeted(t, addr)
		got := c.sendMessage("sender@example.net", []string{"a@example.test"}, "Subject: x\r\n\r\n"+strings.Repeat("x", 2100)+"\r\n")
		expect(t, "final dot", got, "554 5.6.0 ")
	})

	t.Run("a declared size over the limit gets 552 5.3.4 at MAIL", func(t *testing.T) {
		c := greeted(t, addr)
		expect(t, "MAIL SIZE", c.cmd("MAIL FROM:<sender@example.net> SIZE=5000"), "552 5.3.4 ")
	})

	t.Run("a message with a NUL byte gets 554 5.6.0", func(t *testing.T) {
		c := greeted(t, addr)
		expect(t, "final dot", c.sendMessage("sender@example.net", []string{"a@example.test"}, "Subject: x\r\n\r\na\x00b\r\n"), "554 5.6.0 ")
	})

	t.Run("a bad sender address gets 553 5.1.7", func(t *testing.T) {
		c := greeted(t, addr)
		expect(t, "MAIL", c.cmd("MAIL FROM:<%s>", "a%b@example.net"), "553 5.1.7 ")
	})
}

func TestReadMessage(t *testing.T) {
	many := strings.Repeat("Received: from x\r\n", DefaultHopcountLimit+1)
	cases := []struct {
		name, in, want string
		err            error
	}{
		{"CRLF passes unchanged", "A: b\r\n\r\nbody\r\n", "A: b\r\n\r\nbody\r\n", nil},
		{"a bare LF becomes CRLF", "A: b\n\nbody\n", "A: b\r\n\r\nbody\r\n", nil},
		{"a bare CR becomes CRLF and is never relayed alone", "A: b\r\n\r\nx\ry\r", "A: b\r\n\r\nx\r\ny\r\n", nil},
		{"a smuggled end of data is normalised into a plain line", "A: b\r\n\r\nx\n.\ny\r\n", "A: b\r\n\r\nx\r\n.\r\ny\r\n", nil},
		{"a NUL byte is refused", "A: b\r\n\r\nx\x00\r\n", "", errMessageNUL},
		{"more than 100 Received headers is a loop", many + "\r\nbody\r\n", "", errMessageLoop},
		{"Received in the body does not count", "A: b\r\n\r\n" + many, "A: b\r\n\r\n" + many, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readMessage(strings.NewReader(c.in), []byte("P: q\r\n"), 1<<20, DefaultHopcountLimit)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || string(got) != "P: q\r\n"+c.want {
				t.Fatalf("got %q, %v; want %q", got, err, "P: q\r\n"+c.want)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Node, c.Cluster, c.Limit, c.Relay, c.SpoolDir = "n1", "c1", 10, "127.0.0.1:25", t.TempDir()
		return c
	}
	cases := []struct {
		name string
		edit func(*Config)
	}{
		{"a zero limit", func(c *Config) { c.Limit = 0 }},
		{"a node name with a dot", func(c *Config) { c.Node = "a.b" }},
		{"a negative cool-down", func(c *Config) { c.Cooldown = -time.Second }},
		{"a relay without a port", func(c *Config) { c.Relay = "relay.example" }},
		{"no spool directory", func(c *Config) { c.SpoolDir = "" }},
		{"retry max below retry min", func(c *Config) { c.RetryMax = time.Second }},
		{"a domain with a space", func(c *Config) { c.Domains = []string{"exa mple.test"} }},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
	t.Run("a zero cool-down is allowed", func(t *testing.T) {
		cfg := base()
		cfg.Cooldown = 0
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}
