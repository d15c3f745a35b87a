package mta

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mtastress/mtastress/testenv"
)

// startTLSRaw dials addr, reads the greeting, writes pre and STARTTLS in one write, reads
// replies up to the 220 and shakes hands. It returns the TLS connection, its reader, and the
// replies before the 220.
func startTLSRaw(t *testing.T, addr, host, pre string) (*tls.Conn, *bufio.Reader, []string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if g, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q, %v", g, err)
	}
	if _, err := c.Write([]byte(pre + "STARTTLS\r\n")); err != nil {
		t.Fatal(err)
	}
	var before []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", before, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line[3] == '-' {
			continue
		}
		if strings.HasPrefix(line, "220 ") {
			break
		}
		before = append(before, line)
	}
	if r.Buffered() > 0 {
		t.Fatalf("%d bytes after the 220, before the handshake", r.Buffered())
	}
	tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, bufio.NewReader(tc), before
}

// tlsNode starts a server with a certificate, its config edited by edit, relaying to a sink.
func tlsNode(t *testing.T, edit func(*Config)) (Config, *Server, string, *testenv.Sink) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.TLSCertFile, cfg.TLSKeyFile = attackCert(t, cfg.Hostname)
	if edit != nil {
		edit(&cfg)
	}
	s, addr := startServer(t, cfg)
	return cfg, s, addr, sink
}

// TestStartTLSByTheWrapper checks what running STARTTLS in the connection wrapper gives a
// session inside TLS: everything the wrapper does in the clear.
func TestStartTLSByTheWrapper(t *testing.T) {
	t.Run("EHLO offers STARTTLS once, and not inside TLS", func(t *testing.T) {
		cfg, _, addr, _ := tlsNode(t, nil)
		c := dialRaw(t, addr)
		expect(t, "greeting", c.reply(5*time.Second), "220 ")
		c.send("EHLO client.test")
		lines := readReply(t, c.r)
		if n := countLine(lines, "STARTTLS"); n != 1 {
			t.Fatalf("EHLO reply %q offers STARTTLS %d times", lines, n)
		}
		tc, r, _ := startTLSRaw(t, addr, cfg.Hostname, "")
		tc.Write([]byte("EHLO client.test\r\n"))
		inside := readReply(t, r)
		if countLine(inside, "STARTTLS") != 0 || !strings.HasPrefix(inside[0], "250-Hello ") {
			t.Fatalf("EHLO inside TLS: %q", inside)
		}
		tc.Write([]byte("STARTTLS\r\nQUIT\r\n"))
		res := readReplies(t, tc, r, time.Second)
		checkReplies(t, res.replies, []string{"502 5.5.1 ", "221 "})
	})

	t.Run("replies to commands pipelined before STARTTLS arrive before the 220", func(t *testing.T) {
		cfg, _, addr, _ := tlsNode(t, nil)
		_, _, before := startTLSRaw(t, addr, cfg.Hostname, "EHLO client.test\r\nNOOP\r\nRSET\r\n")
		checkReplies(t, before, []string{"250 ", "250 2.0.0 ", "250 2.0.0 "})
	})

	t.Run("a sender given before STARTTLS is forgotten", func(t *testing.T) {
		cfg, _, addr, _ := tlsNode(t, nil)
		tc, r, before := startTLSRaw(t, addr, cfg.Hostname, "EHLO client.test\r\nMAIL FROM:<a@example.net>\r\n")
		checkReplies(t, before, []string{"250 ", "250 "})
		tc.Write([]byte("EHLO client.test\r\nRCPT TO:<user1@example.test>\r\nQUIT\r\n"))
		res := readReplies(t, tc, r, time.Second)
		checkReplies(t, res.replies, []string{"250 ", "502 5.5.1 ", "221 "})
	})

	t.Run("a lone CR before the end of data inside TLS does not hide the end", func(t *testing.T) {
		cfg, s, addr, sink := tlsNode(t, func(c *Config) { c.CommandTimeout = 2 * time.Second })
		tc, r, _ := startTLSRaw(t, addr, cfg.Hostname, atkHello)
		tc.Write([]byte(atkHello + atkEnvelope + "DATA\r\n" + atkFirst + "\r" + atkEnd + atkQuit))
		res := readReplies(t, tc, r, time.Second)
		checkReplies(t, res.replies, replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting))
		if snap := settled(t, s); snap.MessagesAccepted != 1 {
			t.Fatalf("%d messages queued, want 1", snap.MessagesAccepted)
		}
		eventually(t, 5*time.Second, "the message with ESMTPS", func() bool {
			m := sink.Messages()
			return len(m) == 1 && strings.Contains(string(m[0].Data), "with ESMTPS id")
		})
	})

	t.Run("the stress limits hold inside TLS and the 421 is said there", func(t *testing.T) {
		cfg, _, addr, _ := tlsNode(t, func(c *Config) { c.JunkLimit, c.HardErrorLimit = 2, 1 })
		tc, r, _ := startTLSRaw(t, addr, cfg.Hostname, "")
		tc.Write([]byte(atkHello + "NOOP\r\n"))
		readReply(t, r)
		expect(t, "NOOP", readReply(t, r)[0], "250 2.0.0 ")
		// The third junk command is past the limit: an error, and one is the hard limit.
		tc.Write([]byte("NOOP\r\nMAIL FROM:<a@example.net>\r\n"))
		res := readReplies(t, tc, r, 2*time.Second)
		checkReplies(t, res.replies, []string{"421 4.7.0 "})
		if !res.closed {
			t.Error("the session is still open")
		}
	})

	t.Run("echoed control characters are cleaned inside TLS", func(t *testing.T) {
		cfg, _, addr, _ := tlsNode(t, nil)
		tc, r, _ := startTLSRaw(t, addr, cfg.Hostname, "")
		// readReplies fails on a reply with a control character in it.
		tc.Write([]byte("EHLO evil\x01name.test\r\n" + atkQuit))
		res := readReplies(t, tc, r, time.Second)
		checkReplies(t, res.replies, []string{"250 ", "221 "})
	})

	t.Run("shutdown says 421 to an idle session inside TLS", func(t *testing.T) {
		sink := startSink(t)
		cfg := testConfig(t, sink.Addr())
		cfg.TLSCertFile, cfg.TLSKeyFile = attackCert(t, cfg.Hostname)
		s, addr := startServerNoCleanup(t, cfg)
		tc, r, _ := startTLSRaw(t, addr, cfg.Hostname, "")
		tc.Write([]byte(atkHello))
		if lines := readReply(t, r); !strings.HasPrefix(lines[0], "250") {
			t.Fatalf("EHLO: %q", lines)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { s.Shutdown(ctx); close(done) }()
		res := readReplies(t, tc, r, 2*time.Second)
		checkReplies(t, res.replies, []string{"421 4.3.2 "})
		tc.Close() // else Shutdown waits out the lingering close
		<-done
	})

	t.Run("a failed handshake ends the session and frees its slot", func(t *testing.T) {
		_, s, addr, _ := tlsNode(t, nil)
		c := dialRaw(t, addr)
		expect(t, "greeting", c.reply(5*time.Second), "220 ")
		expect(t, "STARTTLS", c.cmd("STARTTLS"), "220 ")
		c.conn.Write([]byte("this is not a TLS record\r\n"))
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.r.ReadString('\n'); err == nil {
			t.Fatal("the server went on after a broken handshake")
		}
		eventually(t, 5*time.Second, "the slot back", func() bool { return s.Snapshot().Active == 0 })
	})
}

func countLine(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if len(l) > 4 && l[4:] == want {
			n++
		}
	}
	return n
}

// readReply reads the lines of one reply.
func readReply(t *testing.T, r *bufio.Reader) []string {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %q: %v", lines, err)
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}
