package mta

// Attacks on the connection wrapper's reader (connread.go), its STARTTLS (starttls.go), the
// lingering close and the waiter watch, against a real server on 127.0.0.1. Every test is
// named TestBreak... or FuzzBreak...: go test -count=1 -run Break -v ./mta/

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtastress/mtastress/testenv"
)

// ---------------------------------------------------------------------------------------------
// Helpers.

// brkNode starts a server relaying to a fresh sink; withTLS gives it a certificate. Heavy loops
// pass quiet to keep the test log short.
func brkNode(t *testing.T, withTLS, quiet bool, edit func(*Config)) (*Server, string, *testenv.Sink, Config) {
	t.Helper()
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.MaxMessageBytes = 64 << 10
	cfg.CommandTimeout = 3 * time.Second
	cfg.Limit = 20 // no stress from the test's own connections
	if withTLS {
		cfg.TLSCertFile, cfg.TLSKeyFile = attackCert(t, cfg.Hostname)
	}
	if quiet {
		cfg.Logger = nil
	}
	if edit != nil {
		edit(&cfg)
	}
	s, addr := startServer(t, cfg)
	return s, addr, sink, cfg
}

// brkDial dials addr and reads the greeting.
func brkDial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	brkConnsMu.Lock()
	brkConns = append(brkConns, c)
	brkConnsMu.Unlock()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if g, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q, %v", g, err)
	}
	return c, r
}

// brkWrite writes b in pieces cut at cuts (offsets into b, ascending), pausing gap between the
// pieces so that each arrives in a read of its own.
func brkWrite(t testing.TB, c net.Conn, b []byte, cuts []int, gap time.Duration) {
	t.Helper()
	prev := 0
	for _, cut := range append(cuts, len(b)) {
		if cut <= prev || cut > len(b) {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b[prev:cut]); err != nil {
			return // the server may hang up first; the replies tell
		}
		prev = cut
		if gap > 0 && cut < len(b) {
			time.Sleep(gap)
		}
	}
}

// brkReplyLines reads every reply line until the end or quiet; each must be well formed.
func brkReplyLines(t testing.TB, c net.Conn, r *bufio.Reader, quiet time.Duration) (lines []string, closed bool) {
	t.Helper()
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		line, err := r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if line != "" {
				t.Errorf("a partial reply line %q before %v", line, err)
			}
			return lines, !(errors.As(err, &ne) && ne.Timeout())
		}
		if !wellFormedReply(line) {
			t.Errorf("malformed reply line %q", line)
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
	}
}

// lastLines keeps the last line of each reply.
func lastLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if len(l) > 3 && l[3] == ' ' {
			out = append(out, l)
		}
	}
	return out
}

// brkReplies reads replies until the end or quiet and returns the last line of each.
func brkReplies(t testing.TB, c net.Conn, r *bufio.Reader, quiet time.Duration) ([]string, bool) {
	t.Helper()
	lines, closed := brkReplyLines(t, c, r, quiet)
	return lastLines(lines), closed
}

// brkUntil220 reads reply lines up to and including a 220 and returns the last lines before it.
func brkUntil220(t *testing.T, c net.Conn, r *bufio.Reader) ([]string, []string) {
	t.Helper()
	var all []string
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no 220 after %q: %v", all, err)
		}
		if !wellFormedReply(line) {
			t.Errorf("malformed reply line %q", line)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "220 ") {
			return lastLines(all), all
		}
		all = append(all, line)
	}
}

// brkHandshake starts TLS as a client on c, after the 220 was read through r.
func brkHandshake(t *testing.T, c net.Conn, r *bufio.Reader, host string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	if r.Buffered() > 0 {
		t.Fatalf("%d bytes after the 220, before the handshake", r.Buffered())
	}
	tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, bufio.NewReader(tc)
}

// brkConns are the test clients' connections, closed by brkFreed so that lingering closes end
// at once (a linger lasts until the client closes, or 2 s).
var (
	brkConnsMu sync.Mutex
	brkConns   []net.Conn
)

// brkFreed closes the test's clients and waits until the node holds no session, no waiter and
// no lingering close.
func brkFreed(t *testing.T, s *Server) {
	t.Helper()
	brkConnsMu.Lock()
	for _, c := range brkConns {
		c.Close()
	}
	brkConns = nil
	brkConnsMu.Unlock()
	eventually(t, 5*time.Second, "every slot, waiter and linger freed", func() bool {
		s.pool.mu.Lock()
		conns, lingers := len(s.pool.conns), len(s.pool.lingers)
		s.pool.mu.Unlock()
		snap := s.Snapshot()
		return snap.Active == 0 && snap.Waiting == 0 && conns == 0 && lingers == 0
	})
}

// brkSessionGoroutines counts the goroutines serving, lingering or watching a connection of
// the node (go-smtp's connection goroutines over a slotConn, lingers, watches, 421 writers).
func brkSessionGoroutines() (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var dump strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "mta.(*slotConn)") || strings.Contains(g, "mta.(*slotPool).watch") ||
			strings.Contains(g, "mta.rejectConn") || strings.Contains(g, "mta.(*slotPool).admitProxied") {
			n++
			dump.WriteString(g + "\n\n")
		}
	}
	return n, dump.String()
}

// brkGoroutines waits until no goroutine serves a connection of the node any more.
func brkGoroutines(t *testing.T, _ int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, dump := brkSessionGoroutines()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d session goroutines left:\n%s", n, dump)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brkMessage waits for the message queued as id at the sink and returns its data after mark.
func brkMessage(t *testing.T, sink *testenv.Sink, id, mark string) []byte {
	t.Helper()
	var got []byte
	eventually(t, 5*time.Second, "message "+id+" at the next hop", func() bool {
		for _, m := range sink.Messages() {
			if bytes.Contains(m.Data, []byte(" id "+id)) {
				got = m.Data
				return true
			}
		}
		return false
	})
	_, after, ok := bytes.Cut(got, []byte(mark))
	if !ok {
		t.Fatalf("message %s has no %q:\n%q", id, mark, got)
	}
	return after
}

// queuedID is the queue id in a "250 2.0.0 Ok: queued as ID" reply.
func queuedID(reply string) string { return strings.TrimPrefix(reply, atkQueued[0]) }

// brkHeld is how long a test waits to see whether the server answers; a stalled server
// answers nothing in it.
const brkHeld = time.Second

// ---------------------------------------------------------------------------------------------
// STARTTLS.

// TestBreakSTARTTLSSplitAtEveryOffset writes "EHLO\r\nSTARTTLS\r\n" in two TCP writes, cut at
// every offset, then runs a whole transaction inside TLS: the replies before the 220 must be
// EHLO's alone, nothing may follow the 220 in the clear, and the message must arrive with ESMTPS.
func TestBreakSTARTTLSSplitAtEveryOffset(t *testing.T) {
	s, addr, sink, cfg := brkNode(t, true, true, nil)
	base := runtime.NumGoroutine()
	pre := []byte("EHLO client.test\r\nSTARTTLS\r\n")
	for cut := 1; cut < len(pre); cut++ {
		c, r := brkDial(t, addr)
		brkWrite(t, c, pre, []int{cut}, 3*time.Millisecond)
		before, _ := brkUntil220(t, c, r)
		checkReplies(t, before, []string{"250 "})
		tc, tr := brkHandshake(t, c, r, cfg.Hostname)
		tc.Write([]byte(atkHello + atkEnvelope + "DATA\r\n" + fmt.Sprintf("X-Cut: %d\r\n\r\nbody", cut) + atkEnd + atkQuit))
		got, closed := brkReplies(t, tc, tr, 2*time.Second)
		checkReplies(t, got, replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting))
		if !closed {
			t.Errorf("cut %d: the session did not end after QUIT", cut)
		}
		c.Close()
	}
	if snap := settled(t, s); snap.MessagesAccepted != uint64(len(pre)-1) {
		t.Errorf("%d queued, want %d", snap.MessagesAccepted, len(pre)-1)
	}
	for _, m := range sink.Messages() {
		if !bytes.Contains(m.Data, []byte("with ESMTPS id")) {
			t.Errorf("a message without ESMTPS: %q", m.Data[:min(200, len(m.Data))])
		}
	}
	brkFreed(t, s)
	brkGoroutines(t, base)
}

// TestBreakSTARTTLSVariants sends spellings of STARTTLS alone after EHLO. Each gets exactly one
// well-formed reply and the session goes on (a 220 is followed by a real handshake).
func TestBreakSTARTTLSVariants(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, true, nil)
	for _, v := range []struct {
		line  string
		start bool   // the wrapper starts TLS
		want  string // else the reply
	}{
		{"STARTTLS\r\n", true, ""},
		{"starttls\r\n", true, ""},
		{"StartTls\r\n", true, ""},
		{"STARTTLS\n", true, ""},
		{"STARTTLS \r\n", true, ""},
		{"STARTTLS\r\r\n", true, ""},
		{"STARTTLS foo\r\n", false, "5"},
		{"STARTTLS  \r\n", true, ""},
		{"STARTTLSX\r\n", false, "5"},
		{"STARTTLS\t\r\n", true, ""},
		{"STARTTLS" + strings.Repeat(" ", 70) + "\r\n", true, ""},
		{" STARTTLS\r\n", false, "5"},
	} {
		t.Run(fmt.Sprintf("%q", v.line), func(t *testing.T) {
			c, r := brkDial(t, addr)
			c.Write([]byte("EHLO client.test\r\n"))
			brkReplyLines(t, c, r, 300*time.Millisecond)
			c.Write([]byte(v.line))
			if v.start {
				before, _ := brkUntil220(t, c, r)
				checkReplies(t, before, nil)
				tc, tr := brkHandshake(t, c, r, cfg.Hostname)
				tc.Write([]byte("EHLO client.test\r\nQUIT\r\n"))
				got, _ := brkReplies(t, tc, tr, time.Second)
				checkReplies(t, got, []string{"250 ", "221 "})
				return
			}
			c.Write([]byte("NOOP\r\nQUIT\r\n"))
			got, closed := brkReplies(t, c, r, time.Second)
			t.Logf("%q got %q", v.line, got)
			checkReplies(t, got, []string{v.want, "250 2.0.0 ", "221 "})
			if !closed {
				t.Error("the session did not end")
			}
		})
	}
	brkFreed(t, s)
}

// TestBreakSTARTTLSTwice: a second STARTTLS pipelined behind the first is thrown away with the
// rest of that read; a STARTTLS inside TLS is refused, and the session goes on inside TLS.
func TestBreakSTARTTLSTwice(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, true, nil)
	c, r := brkDial(t, addr)
	c.Write([]byte("EHLO client.test\r\nSTARTTLS\r\nSTARTTLS\r\n"))
	before, _ := brkUntil220(t, c, r)
	checkReplies(t, before, []string{"250 "})
	tc, tr := brkHandshake(t, c, r, cfg.Hostname)
	tc.Write([]byte("EHLO client.test\r\nSTARTTLS\r\nSTARTTLS\r\nNOOP\r\nQUIT\r\n"))
	got, _ := brkReplies(t, tc, tr, time.Second)
	checkReplies(t, got, []string{"250 ", "502 5.5.1 ", "502 5.5.1 ", "250 2.0.0 ", "221 "})
	brkFreed(t, s)
}

// TestBreakSTARTTLSAfterQuit pipelines QUIT, then STARTTLS, in one write. go-smtp answers QUIT
// and closes before the STARTTLS's turn; the wrapper holds every reply once it has seen the
// STARTTLS line, so the replies it holds must still be sent when the session ends.
func TestBreakSTARTTLSAfterQuit(t *testing.T) {
	s, addr, _, _ := brkNode(t, true, false, nil)
	c, r := brkDial(t, addr)
	c.Write([]byte("EHLO client.test\r\nNOOP\r\nQUIT\r\nSTARTTLS\r\n"))
	got, closed := brkReplies(t, c, r, brkHeld)
	checkReplies(t, got, []string{"250 ", "250 2.0.0 ", "221 "})
	if !closed {
		t.Error("the session did not end after QUIT")
	}
	brkFreed(t, s)
}

// TestBreakSTARTTLSAfterGoSMTPErrorLimit: go-smtp closes after its fourth protocol error
// ("500 Too many errors"); with a STARTTLS behind the errors in the same write, those replies
// are held and must still reach the client.
func TestBreakSTARTTLSAfterGoSMTPErrorLimit(t *testing.T) {
	s, addr, _, _ := brkNode(t, true, false, nil)
	c, r := brkDial(t, addr)
	c.Write([]byte("EHLO client.test\r\n" + strings.Repeat("XYZZY\r\n", 4) + "STARTTLS\r\n"))
	got, closed := brkReplies(t, c, r, brkHeld)
	checkReplies(t, got, replies(atkGreeted, slicesRepeat("50", 4), []string{"500 5.5.1 "}))
	if !closed {
		t.Error("the session did not end")
	}
	brkFreed(t, s)
}

// TestBreakEHLOPipelinedWithSTARTTLSOffersIt: the EHLO reply that is sent together with the 220
// must offer the STARTTLS that the server then accepts (the wrapper decides whether to add the
// line when go-smtp writes the reply, after it has already seen the STARTTLS line).
func TestBreakEHLOPipelinedWithSTARTTLSOffersIt(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, false, nil)
	c, r := brkDial(t, addr)
	c.Write([]byte("EHLO client.test\r\nSTARTTLS\r\n"))
	_, lines := brkUntil220(t, c, r)
	if countLine(lines, "STARTTLS") != 1 {
		t.Errorf("the EHLO reply before the 220 does not offer STARTTLS: %q", lines)
	}
	tc, tr := brkHandshake(t, c, r, cfg.Hostname)
	tc.Write([]byte(atkQuit))
	brkReplies(t, tc, tr, time.Second)
	brkFreed(t, s)
}

// TestBreakSecondEHLO: every EHLO before TLS offers STARTTLS once, none inside TLS, also when
// two EHLOs come in one write, and HELO's one-line reply is left alone.
func TestBreakSecondEHLO(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, true, nil)
	c, r := brkDial(t, addr)
	c.Write([]byte("EHLO one.test\r\nEHLO two.test\r\nHELO three.test\r\nEHLO four.test\r\n"))
	lines, _ := brkReplyLines(t, c, r, 500*time.Millisecond)
	if n := countLine(lines, "STARTTLS"); n != 3 {
		t.Errorf("three EHLO replies offer STARTTLS %d times: %q", n, lines)
	}
	checkReplies(t, lastLines(lines), []string{"250 ", "250 ", "250 2.0.0 Hello three.test", "250 "})
	c.Write([]byte("STARTTLS\r\n"))
	brkUntil220(t, c, r)
	tc, tr := brkHandshake(t, c, r, cfg.Hostname)
	tc.Write([]byte("EHLO five.test\r\nEHLO six.test\r\nQUIT\r\n"))
	inside, _ := brkReplyLines(t, tc, tr, time.Second)
	if n := countLine(inside, "STARTTLS"); n != 0 {
		t.Errorf("EHLO inside TLS offers STARTTLS: %q", inside)
	}
	checkReplies(t, lastLines(inside), []string{"250 ", "250 ", "221 "})
	brkFreed(t, s)
}

// clientHelloBytes returns the first flight of a TLS client, as it would write it.
func clientHelloBytes(t *testing.T, host string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		tc := tls.Client(a, &tls.Config{ServerName: host, InsecureSkipVerify: true})
		tc.Handshake()
	}()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestBreakSTARTTLSWithClientHelloInSameWrite sends STARTTLS and a ClientHello in one write
// (a client that does not wait for the 220). The ClientHello was read in the clear and is
// thrown away; the session must then end, and free its slot, no later than its command
// timeout (1 s here), and nothing may be answered in the clear after the 220.
func TestBreakSTARTTLSWithClientHelloInSameWrite(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, false, func(c *Config) { c.CommandTimeout = time.Second })
	hello := clientHelloBytes(t, cfg.Hostname)
	c, r := brkDial(t, addr)
	c.Write(append([]byte("EHLO client.test\r\nSTARTTLS\r\n"), hello...))
	brkUntil220(t, c, r)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(4 * time.Second))
	rest, err := io.ReadAll(r)
	if len(rest) > 0 {
		t.Errorf("after the 220 the server sent %q", rest)
	}
	if err != nil {
		t.Errorf("the session did not end within 4 s: %v", err)
	}
	t.Logf("the session ended %v after the 220", time.Since(start).Round(10*time.Millisecond))
	brkFreed(t, s)
}

// TestBreakTLSClientBrokenHandshake: clients that die or talk nonsense in the handshake. Each
// session must end within a second or so and give its slot back; the node then serves TLS.
func TestBreakTLSClientBrokenHandshake(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, true, nil)
	base := runtime.NumGoroutine()
	hello := clientHelloBytes(t, cfg.Hostname)
	for _, v := range []struct {
		name string
		do   func(c net.Conn)
	}{
		{"closes at once", func(c net.Conn) { c.Close() }},
		{"half a ClientHello then closes", func(c net.Conn) { c.Write(hello[:len(hello)/2]); c.Close() }},
		{"half a ClientHello then half-closes", func(c net.Conn) {
			c.Write(hello[:len(hello)/2])
			c.(*net.TCPConn).CloseWrite()
		}},
		{"garbage", func(c net.Conn) { c.Write([]byte("EHLO client.test\r\nMAIL FROM:<a@example.net>\r\n")) }},
		{"a TLS alert", func(c net.Conn) { c.Write([]byte{21, 3, 3, 0, 2, 2, 40}) }},
		{"an oversized record header", func(c net.Conn) { c.Write([]byte{22, 3, 1, 0xff, 0xff}) }},
		{"SSLv2 hello", func(c net.Conn) { c.Write([]byte{0x80, 0x2e, 0x01, 0x00, 0x02}) }},
		{"the ClientHello, then closes after the ServerHello", func(c net.Conn) {
			c.Write(hello)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			c.Read(make([]byte, 100))
			c.Close()
		}},
		{"RST mid-handshake", func(c net.Conn) {
			c.Write(hello[:10])
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			c, r := brkDial(t, addr)
			c.Write([]byte("STARTTLS\r\n"))
			brkUntil220(t, c, r)
			start := time.Now()
			v.do(c)
			eventually(t, 2*time.Second, "the slot back", func() bool { return s.Snapshot().Active == 0 })
			t.Logf("the slot came back after %v", time.Since(start).Round(time.Millisecond))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if rest, _ := io.ReadAll(r); len(rest) > 0 && rest[0] != 0x15 && rest[0] != 0x16 {
				t.Errorf("the server answered in the clear: %q", rest)
			} else if len(rest) > 0 {
				t.Logf("the server answered with TLS records: %q", rest[:min(len(rest), 16)])
			}
			c.Close()
			brkFreed(t, s)
		})
	}
	// The node still serves TLS.
	c, r := brkDial(t, addr)
	c.Write([]byte("STARTTLS\r\n"))
	brkUntil220(t, c, r)
	tc, tr := brkHandshake(t, c, r, cfg.Hostname)
	tc.Write([]byte(atkHello + atkQuit))
	got, _ := brkReplies(t, tc, tr, time.Second)
	checkReplies(t, got, replies(atkGreeted, atkQuitting))
	c.Close()
	brkFreed(t, s)
	brkGoroutines(t, base)
}

// TestBreakSTARTTLSInsideData: a STARTTLS line in a DATA body, after a pipelined DATA, and in
// a BDAT chunk is data: no 220, the line reaches the next hop, the session stays in the clear.
func TestBreakSTARTTLSInsideData(t *testing.T) {
	for _, v := range []struct{ name, stream string }{
		{"in a body after the 354", ""},
		{"in a body pipelined with DATA", atkHello + atkEnvelope + "DATA\r\nSubject: s\r\n\r\nSTARTTLS\r\nafter" + atkEnd + atkQuit},
		{"in a BDAT chunk", atkHello + atkEnvelope + "BDAT 31 LAST\r\nSubject: s\r\n\r\nSTARTTLS\r\nafter\r\n" + atkQuit},
		{"across two BDAT chunks", atkHello + atkEnvelope + "BDAT 18\r\nSubject: s\r\n\r\nSTARBDAT 13 LAST\r\nTTLS\r\nafter\r\n" + atkQuit},
	} {
		t.Run(v.name, func(t *testing.T) {
			s, addr, sink, _ := brkNode(t, true, false, nil)
			c, r := brkDial(t, addr)
			var got []string
			if v.stream == "" {
				c.Write([]byte(atkHello + atkEnvelope + "DATA\r\n"))
				for len(got) < 4 {
					l, _ := brkReplies(t, c, r, 300*time.Millisecond)
					if len(l) == 0 {
						break
					}
					got = append(got, l...)
				}
				c.Write([]byte("Subject: s\r\n\r\nSTARTTLS\r\nafter" + atkEnd + atkQuit))
			} else {
				c.Write([]byte(v.stream))
			}
			more, _ := brkReplies(t, c, r, time.Second)
			got = append(got, more...)
			want := replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting)
			if strings.Contains(v.name, "BDAT") {
				want = replies(atkGreeted, atkOpened, atkQueued, atkQuitting)
				if strings.Contains(v.name, "two") {
					want = replies(atkGreeted, atkOpened, []string{"250 2.0.0 "}, atkQueued, atkQuitting)
				}
			}
			checkReplies(t, got, want)
			settled(t, s)
			if msgs := sink.Messages(); len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("\r\n\r\nSTARTTLS\r\nafter\r\n")) {
				t.Errorf("the next hop got %d messages: %q", len(msgs), msgs)
			}
			brkFreed(t, s)
		})
	}
}

// ---------------------------------------------------------------------------------------------
// The data reader.

// brkBodies are bodies with every bare-CR and dot pattern the wrapper mends or must leave.
var brkBodies = []string{
	"Subject: a\r\n\r\n.\rdot-cr line\r\nx\r\rdouble\r\ny\r.\r\nlone\n.\r\nend",
	"Subject: b\r\n\r\n..\r\n.\r\r\n.\r\r\r\n\r\r\r\r\n.x\r",
	"Subject: c\r\n\r\nx\r\n.\r\rDATA\r\nQUIT\r\n\r.\r\n\n.\n.\r",
}

// TestBreakDataSplitAtEveryOffset sends a whole dialogue in two TCP writes, cut at every
// offset, with bodies holding ".\r", "\r\r", "\r.\r\n" and "\n.\r\n". Every cut must give the
// same six replies and the next hop the RFC 5321 decoding of the body with bare CR and LF made
// CRLF.
func TestBreakDataSplitAtEveryOffset(t *testing.T) {
	s, addr, sink, _ := brkNode(t, false, true, nil)
	base := runtime.NumGoroutine()
	const mark = "X-Break: mark\r\n"
	type sent struct {
		id   string
		want []byte
		what string
	}
	var all []sent
	for bi, body := range brkBodies {
		data := mark + body + atkEnd
		content, end := rfcData([]byte(data))
		if end != len(data) {
			t.Fatalf("body %d holds an end of data", bi)
		}
		want := crlf(content[len(mark):])
		stream := []byte(atkHello + atkEnvelope + "DATA\r\n" + data + atkQuit)
		for cut := 1; cut < len(stream); cut++ {
			c, r := brkDial(t, addr)
			brkWrite(t, c, stream, []int{cut}, 2*time.Millisecond)
			got, closed := brkReplies(t, c, r, brkHeld)
			c.Close()
			what := fmt.Sprintf("body %d cut %d (%q|%q)", bi, cut, stream[max(0, cut-6):cut], stream[cut:min(len(stream), cut+6)])
			if len(got) != 6 || !strings.HasPrefix(got[4], atkQueued[0]) || !closed {
				t.Errorf("%s: replies %q, closed %v", what, got, closed)
				continue
			}
			all = append(all, sent{queuedID(got[4]), want, what})
		}
	}
	for _, m := range all {
		if got := brkMessage(t, sink, m.id, mark); !bytes.Equal(got, m.want) {
			t.Errorf("%s: the next hop got\n%q\nwant\n%q", m.what, got, m.want)
		}
	}
	brkFreed(t, s)
	brkGoroutines(t, base)
}

// TestBreakTinyWrites sends a whole dialogue one byte per TCP write, STARTTLS and the TLS
// dialogue included (inside TLS one byte per record), and a body full of bare CRs.
func TestBreakTinyWrites(t *testing.T) {
	s, addr, sink, cfg := brkNode(t, true, true, nil)
	const mark = "X-Break: tiny\r\n"
	body := mark + brkBodies[0] + atkEnd
	content, _ := rfcData([]byte(body))
	want := crlf(content[len(mark):])
	perByte := func(b []byte) []int {
		cuts := make([]int, len(b))
		for i := range cuts {
			cuts[i] = i + 1
		}
		return cuts
	}
	c, r := brkDial(t, addr)
	c.(*net.TCPConn).SetNoDelay(true)
	clear := []byte(atkHello + atkEnvelope + "DATA\r\n" + body + "NOOP\r\nSTARTTLS\r\n")
	brkWrite(t, c, clear, perByte(clear), 200*time.Microsecond)
	before, _ := brkUntil220(t, c, r)
	checkReplies(t, before, replies(atkGreeted, atkOpened, atkDataGo, atkQueued, []string{"250 2.0.0 "}))
	tc, tr := brkHandshake(t, c, r, cfg.Hostname)
	inside := []byte(atkHello + atkEnvelope + "DATA\r\n" + body + atkQuit)
	for i := range inside {
		tc.Write(inside[i : i+1])
	}
	got, _ := brkReplies(t, tc, tr, 2*time.Second)
	checkReplies(t, got, replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting))
	if len(before) == 5 && len(got) == 5 {
		for _, id := range []string{queuedID(before[3]), queuedID(got[3])} {
			if m := brkMessage(t, sink, id, mark); !bytes.Equal(m, want) {
				t.Errorf("message %s: got\n%q\nwant\n%q", id, m, want)
			}
		}
	}
	brkFreed(t, s)
}

// TestBreakBDATChunkContents: chunks holding "DATA\r\n", ".\r\n", "\r\n.\r\n", "STARTTLS\r\n",
// "QUIT\r\n" and ending in a short partial line are data, byte for byte (bare CRs made CRLF).
func TestBreakBDATChunkContents(t *testing.T) {
	s, addr, sink, _ := brkNode(t, true, false, nil)
	chunks := []string{"X-Break: bdat\r\n\r\nDATA\r\n", ".\r\n", "\r\n.\r\n", "STARTTLS\r\nQUIT\r\n", "NOOP", "\r.\rpartial"}
	var b strings.Builder
	b.WriteString(atkHello + atkEnvelope)
	for i, ch := range chunks {
		last := ""
		if i == len(chunks)-1 {
			last = " LAST"
		}
		fmt.Fprintf(&b, "BDAT %d%s\r\n%s", len(ch), last, ch)
	}
	b.WriteString(atkQuit)
	c, r := brkDial(t, addr)
	c.Write([]byte(b.String()))
	got, _ := brkReplies(t, c, r, brkHeld)
	checkReplies(t, got, replies(atkGreeted, atkOpened, slicesRepeat("250 2.0.0 ", len(chunks)-1), atkQueued, atkQuitting))
	if len(got) == len(chunks)+4 {
		want := crlf([]byte(strings.Join(chunks, "")[len("X-Break: bdat\r\n"):]))
		if m := brkMessage(t, sink, queuedID(got[len(got)-2]), "X-Break: bdat\r\n"); !bytes.Equal(m, append(want, "\r\n"...)) && !bytes.Equal(m, want) {
			t.Errorf("the next hop got\n%q\nwant\n%q", m, want)
		}
	}
	brkFreed(t, s)
}

// TestBreakBDATSizeBeyondTheWrappersView writes a BDAT command whose size field lies past the
// first 64 bytes of the line (padding spaces, or leading zeros). go-smtp reads it as BDAT 5 and
// takes the next 5 bytes as the chunk; the wrapper only looks at the first 64 bytes, finds no
// size, and reads the chunk as commands.
func TestBreakBDATSizeBeyondTheWrappersView(t *testing.T) {
	padded := map[string]string{
		"spaces":        "BDAT" + strings.Repeat(" ", 70) + "5 LAST\r\n",
		"leading zeros": "BDAT " + strings.Repeat("0", 70) + "5 LAST\r\n",
	}
	for name, cmd := range padded {
		t.Run(name+": a chunk ending in a partial line is answered at once", func(t *testing.T) {
			s, addr, _, _ := brkNode(t, false, false, nil)
			c, r := brkDial(t, addr)
			c.Write([]byte(atkHello + atkEnvelope + cmd + "hello"))
			got, _ := brkReplies(t, c, r, brkHeld)
			checkReplies(t, got, replies(atkGreeted, atkOpened, atkQueued))
			c.Write([]byte(atkQuit))
			more, _ := brkReplies(t, c, r, brkHeld)
			checkReplies(t, more, atkQuitting)
			brkFreed(t, s)
		})
	}
	t.Run("a STARTTLS line in the chunk is data, not a STARTTLS", func(t *testing.T) {
		s, addr, sink, _ := brkNode(t, true, false, nil)
		chunk := "STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n"
		cmd := fmt.Sprintf("BDAT %s%d LAST\r\n", strings.Repeat("0", 70), len(chunk))
		c, r := brkDial(t, addr)
		c.Write([]byte(atkHello + atkEnvelope + cmd + chunk + atkQuit))
		got, _ := brkReplies(t, c, r, brkHeld)
		checkReplies(t, got, replies(atkGreeted, atkOpened, atkQueued, atkQuitting))
		settled(t, s)
		if msgs := sink.Messages(); len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte(chunk)) {
			t.Errorf("the next hop got %q, want one message holding %q", msgs, chunk)
		}
		brkFreed(t, s)
	})
	t.Run("NOOP lines in the chunk are data, not junk commands", func(t *testing.T) {
		s, addr, _, _ := brkNode(t, false, false, func(c *Config) { c.JunkLimit, c.HardErrorLimit = 1, 1 })
		chunk := "NOOP\r\nNOOP\r\nNOOP\r\n"
		cmd := fmt.Sprintf("BDAT %s%d LAST\r\n", strings.Repeat("0", 70), len(chunk))
		c, r := brkDial(t, addr)
		c.Write([]byte(atkHello + atkEnvelope + cmd + chunk + atkQuit))
		got, _ := brkReplies(t, c, r, brkHeld)
		checkReplies(t, got, replies(atkGreeted, atkOpened, atkQueued, atkQuitting))
		brkFreed(t, s)
	})
}

// TestBreakBDATRefusedByGoSMTPBlindsTheWrapper writes BDAT commands that go-smtp refuses
// without reading a chunk (a size over 32 bits, a third argument, a second argument other than
// LAST, a "+" sign) but whose size the wrapper believes: it passes that many of the following
// bytes unlooked-at, while go-smtp runs them as commands.
func TestBreakBDATRefusedByGoSMTPBlindsTheWrapper(t *testing.T) {
	blinders := []string{"BDAT 4294967296 LAST\r\n", "BDAT 100000 LAST X\r\n", "BDAT 100000 MORE\r\n", "BDAT +100000\r\n"}
	for _, bl := range blinders {
		t.Run(fmt.Sprintf("%q then STARTTLS starts TLS", bl), func(t *testing.T) {
			s, addr, _, _ := brkNode(t, true, false, nil)
			c, r := brkDial(t, addr)
			c.Write([]byte(atkHello + bl))
			brkReplies(t, c, r, 300*time.Millisecond)
			c.Write([]byte("STARTTLS\r\n"))
			got, _ := brkReplies(t, c, r, 500*time.Millisecond)
			checkReplies(t, got, []string{"220 "})
			c.Close()
			brkFreed(t, s)
		})
		t.Run(fmt.Sprintf("%q then a NOOP flood is cut at the junk limit", bl), func(t *testing.T) {
			s, addr, _, _ := brkNode(t, false, false, func(c *Config) { c.JunkLimit, c.HardErrorLimit = 3, 3 })
			// EHLO is the first junk command, the BDAT's 501 the first error. In the flood two
			// NOOPs are allowed, the next two are errors, and the third error ends the session
			// with 421 (the rest of that read is dropped, as documented).
			res := attackOnce(t, addr, []byte(atkHello+bl), []byte(strings.Repeat("NOOP\r\n", 10)+atkQuit), 2, brkHeld)
			checkReplies(t, res.replies, replies(atkGreeted, []string{"501 ", "421 4.7.0 "}))
			brkFreed(t, s)
		})
		t.Run(fmt.Sprintf("%q then a pipelined body ending in a lone CR does not stall", bl), func(t *testing.T) {
			s, addr, _, _ := brkNode(t, false, false, nil)
			c, r := brkDial(t, addr)
			c.Write([]byte(atkHello + bl + atkEnvelope + "DATA\r\n" + atkFirst + "\r" + atkEnd + atkQuit))
			got, _ := brkReplies(t, c, r, brkHeld)
			checkReplies(t, got, replies(atkGreeted, []string{"501 "}, atkOpened, atkDataGo, atkQueued, atkQuitting))
			c.Close()
			brkFreed(t, s)
		})
	}
}

// TestBreakRefusedDATAWithBody sends a body in one write with a DATA that is refused (no RCPT,
// or a refused recipient). As documented, the bytes are then commands: go-smtp's error limit
// cuts the session; a transaction inside the body is not run while they are refused.
func TestBreakRefusedDATAWithBody(t *testing.T) {
	runAttacks(t, []attackCase{
		{
			name:   "DATA without RCPT, a body of unknown lines",
			stream: atkHello + "MAIL FROM:<a@example.net>\r\nDATA\r\n" + atkFirst + atkEnd + atkQuit,
			want: replies(atkGreeted, []string{"250 ", "502 5.5.1 "},
				[]string{"501 5.5.2 ", "501 5.5.2 ", "500 5.5.2 ", "501 5.5.2 ", "500 5.5.1 "}),
			closed: true,
		},
		{
			name:   "a relay-denied RCPT, DATA, and a body of junk",
			stream: atkHello + "MAIL FROM:<a@example.net>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nNOOP\r\nNOOP\r\n.\r\n" + atkQuit,
			want:   replies(atkGreeted, []string{"250 ", "554 5.7.1 ", "502 5.5.1 ", "250 2.0.0 ", "250 2.0.0 ", "501 5.5.2 "}, atkQuitting),
		},
		{
			// The documented rule, shown at its edge: the "body" of a client that pipelines it
			// behind a DATA whose recipient was refused holds a whole transaction, and it runs.
			name: "a refused RCPT, DATA, and a body holding a transaction: the transaction runs (documented)",
			stream: atkHello + "MAIL FROM:<a@example.net>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n" +
				"RSET\r\n" + atkSmuggled + atkEnd + atkQuit,
			want: replies(atkGreeted, []string{"250 ", "554 5.7.1 ", "502 5.5.1 ", "250 2.0.0 "},
				atkOpened, atkDataGo, atkQueued, atkQuitting),
			queued: 1,
			sink: func(t *testing.T, msgs []testenv.SinkMessage) {
				if len(msgs) == 1 && msgs[0].From != "evil@example.net" {
					t.Errorf("from %q", msgs[0].From)
				}
			},
		},
	})
}

// TestBreakLineLengthAround2000: command lines of 1996 to 2002 octets (CRLF included) after
// EHLO, sent whole and cut in two writes at several offsets (inside the wrapper's 64-octet
// view, past it, near the limit). A line within go-smtp's limit (2000) gets its reply; a longer
// one only "500 5.4.0 Too long line" and the end: never a reply to a part of it, and never the
// loss of the EHLO before it. Body lines around the limit get the same answer whether the body
// came with DATA (held by the wrapper) or after the 354.
func TestBreakLineLengthAround2000(t *testing.T) {
	s, addr, _, _ := brkNode(t, false, true, nil)
	for n := 1996; n <= 2002; n++ {
		line := "NOOP " + strings.Repeat("x", n-7) + "\r\n"
		stream := []byte(atkHello + line + atkQuit)
		want := replies(atkGreeted, []string{"250 2.0.0 "}, atkQuitting)
		if n > 2000 {
			want = replies(atkGreeted, []string{"500 5.4.0 "})
		}
		h := len(atkHello)
		for _, cuts := range [][]int{nil, {h + 3}, {h + 70}, {h + 1000}, {h + 1999}, {h + n - 1}} {
			c, r := brkDial(t, addr)
			brkWrite(t, c, stream, cuts, 3*time.Millisecond)
			got, _ := brkReplies(t, c, r, time.Second)
			c.Close()
			ok := len(got) == len(want)
			for i := 0; ok && i < len(want); i++ {
				ok = strings.HasPrefix(got[i], want[i])
			}
			if n > 2000 && len(got) == 1 && strings.HasPrefix(got[0], "500 5.4.0 ") {
				// go-smtp loses the whole read that holds the over-long line, the EHLO before
				// it included: known, and documented by TestOversizedInput.
				ok = true
			}
			if !ok {
				t.Errorf("a %d-octet line, cuts %v: replies %s, want %s", n, cuts, quoteAll(got), quoteAll(want))
			}
		}
	}
	for n := 1997; n <= 2001; n++ {
		body := "X: y\r\n\r\n" + strings.Repeat("z", n-2) + "\r\nend"
		var res [2]string
		for i, oneWrite := range []bool{true, false} {
			var w wireResult
			if oneWrite {
				w = attackOnce(t, addr, nil, []byte(atkHello+atkEnvelope+"DATA\r\n"+body+atkEnd+atkQuit), 0, time.Second)
			} else {
				w = attackOnce(t, addr, []byte(atkHello+atkEnvelope+"DATA\r\n"), []byte(body+atkEnd+atkQuit), 4, time.Second)
			}
			if len(w.replies) >= 5 {
				res[i] = w.replies[4][:3]
			} else {
				res[i] = fmt.Sprint(w.replies)
			}
		}
		if res[0] != res[1] {
			t.Errorf("a %d-octet body line: %s with DATA in the same write, %s after the 354", n, res[0], res[1])
		}
	}
	brkFreed(t, s)
}

// TestBreakBareCRsCountOnce: a message of bare CRs well under the size limit (RFC size 34000
// octets, SIZE declared, limit 64 KiB). The wrapper puts an LF between each two CRs before
// go-smtp counts the message size, so the limit sees twice the octets the client sent.
func TestBreakBareCRsCountOnce(t *testing.T) {
	t.Skip("TODO: go-smtp counts the LF the wrapper puts between two bare CRs toward " +
		"max_message_bytes, so a message of many bare CRs can be refused 552 below the limit; " +
		"counting the limit on the wrapper's input bytes instead would need go-smtp's limit off")
	s, addr, _, _ := brkNode(t, false, false, nil)
	body := "Subject: crs\r\n\r\n" + strings.Repeat("\r", 34000) + "x"
	first := fmt.Sprintf("EHLO a.test\r\nMAIL FROM:<a@example.net> SIZE=%d\r\nRCPT TO:<user1@example.test>\r\nDATA\r\n", len(body)+5)
	res := attackOnce(t, addr, []byte(first), []byte(body+atkEnd+atkQuit), 4, 2*time.Second)
	checkReplies(t, res.replies, replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting))
	brkFreed(t, s)
}

// ---------------------------------------------------------------------------------------------
// Slow, concurrent and half-closing clients.

// TestBreakSlowClient sends a dialogue one byte every 12 ms (each line well within the 1 s
// command timeout, the whole well beyond it), with a bare-CR body.
func TestBreakSlowClient(t *testing.T) {
	s, addr, sink, _ := brkNode(t, false, false, func(c *Config) { c.CommandTimeout = time.Second })
	const mark = "X-Break: slow\r\n"
	body := mark + "a\r\rb\r\n.\rc" + atkEnd
	content, _ := rfcData([]byte(body))
	stream := []byte(atkHello + atkEnvelope + "DATA\r\n" + body + atkQuit)
	cuts := make([]int, len(stream))
	for i := range cuts {
		cuts[i] = i + 1
	}
	c, r := brkDial(t, addr)
	go brkWrite(t, c, stream, cuts, 12*time.Millisecond)
	got, closed := brkReplies(t, c, r, 3*time.Second)
	checkReplies(t, got, replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting))
	if !closed {
		t.Error("the session did not end")
	}
	if len(got) == 6 {
		if m := brkMessage(t, sink, queuedID(got[4]), mark); !bytes.Equal(m, crlf(content[len(mark):])) {
			t.Errorf("got %q", m)
		}
	}
	brkFreed(t, s)
}

// brkSession runs one client's whole dialogue without testing.T's Fatal (for goroutines): half
// of them start TLS; each writes its message in pieces.
func brkSession(addr, host string, i int, useTLS bool) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	readTo := func(r *bufio.Reader, n int) ([]string, error) {
		var out []string
		for len(out) < n {
			line, err := r.ReadString('\n')
			if err != nil {
				return out, fmt.Errorf("after %q: %w", out, err)
			}
			if !wellFormedReply(line) {
				return out, fmt.Errorf("malformed %q", line)
			}
			if line[3] == ' ' {
				out = append(out, strings.TrimRight(line, "\r\n"))
			}
		}
		return out, nil
	}
	if _, err := readTo(r, 1); err != nil {
		return "", err
	}
	var w io.Writer = c
	if useTLS {
		c.Write([]byte("EHLO c.test\r\nSTARTTLS\r\n"))
		got, err := readTo(r, 2)
		if err != nil || !strings.HasPrefix(got[1], "220 ") {
			return "", fmt.Errorf("STARTTLS: %q %v", got, err)
		}
		tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		w, r = tc, bufio.NewReader(tc)
	}
	stream := []byte(atkHello + atkEnvelope + "DATA\r\n" + fmt.Sprintf("X-Session: %d\r\n\r\n.\r\r\nx\r\r", i) + atkEnd + atkQuit)
	for len(stream) > 0 {
		n := min(len(stream), 1+rand.IntN(20))
		w.Write(stream[:n])
		stream = stream[n:]
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
	}
	got, err := readTo(r, 6)
	if err != nil {
		return "", err
	}
	for j, p := range replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting) {
		if !strings.HasPrefix(got[j], p) {
			return "", fmt.Errorf("replies %q", got)
		}
	}
	return queuedID(got[4]), nil
}

// TestBreakConcurrentSessions runs 16 sessions at once, half inside TLS, three rounds.
func TestBreakConcurrentSessions(t *testing.T) {
	s, addr, sink, cfg := brkNode(t, true, true, nil)
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for round := range 3 {
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := brkSession(addr, cfg.Hostname, round*100+i, i%2 == 0); err != nil {
					errs <- fmt.Errorf("session %d.%d: %w", round, i, err)
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if snap := settled(t, s); snap.MessagesAccepted != 48 || sink.Count() != 48 {
		t.Errorf("queued %d, next hop got %d; want 48", snap.MessagesAccepted, sink.Count())
	}
	for _, m := range sink.Messages() {
		cleanLineEnds(t, m.Data)
		if !bytes.Contains(m.Data, []byte("\r\n\r\n\r\n\r\nx\r\n\r\n")) {
			t.Errorf("body %q", m.Data)
		}
	}
	brkFreed(t, s)
	brkGoroutines(t, base)
}

// TestBreakHalfClose: clients that shut their sending side at each point of a dialogue.
func TestBreakHalfClose(t *testing.T) {
	s, addr, sink, cfg := brkNode(t, true, false, nil)
	for _, v := range []struct {
		name, stream string
		want         []string
		queued       int
	}{
		{"after QUIT", atkHello + atkEnvelope + "DATA\r\nX: 1\r\n\r\nb" + atkEnd + atkQuit,
			replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting), 1},
		{"after the end of data, without QUIT", atkHello + atkEnvelope + "DATA\r\nX: 2\r\n\r\nb" + atkEnd,
			replies(atkGreeted, atkOpened, atkDataGo, atkQueued), 1},
		{"inside the data", atkHello + atkEnvelope + "DATA\r\nX: 3\r\n\r\nb\r\n.",
			replies(atkGreeted, atkOpened, atkDataGo, []string{"451 4.3.0 "}), 0},
		{"inside a BDAT chunk", atkHello + atkEnvelope + "BDAT 100 LAST\r\nX: 4\r\n",
			replies(atkGreeted, atkOpened, []string{"4"}), 0},
		{"after a short partial line", atkHello + "NOOP", atkGreeted, 0},
		{"after STARTTLS", atkHello + "STARTTLS\r\n", replies(atkGreeted, []string{"220 "}), 0},
	} {
		t.Run(v.name, func(t *testing.T) {
			before := s.Snapshot().MessagesAccepted
			c, r := brkDial(t, addr)
			c.Write([]byte(v.stream))
			c.(*net.TCPConn).CloseWrite()
			got, closed := brkReplies(t, c, r, 2*time.Second)
			checkReplies(t, got, v.want)
			if !closed {
				t.Error("the session did not end")
			}
			settled(t, s)
			if n := s.Snapshot().MessagesAccepted - before; n != uint64(v.queued) {
				t.Errorf("queued %d, want %d", n, v.queued)
			}
			brkFreed(t, s)
		})
	}
	t.Run("inside TLS, after the end of data", func(t *testing.T) {
		before := sink.Count()
		c, r := brkDial(t, addr)
		c.Write([]byte("STARTTLS\r\n"))
		brkUntil220(t, c, r)
		tc, tr := brkHandshake(t, c, r, cfg.Hostname)
		tc.Write([]byte(atkHello + atkEnvelope + "DATA\r\nX: 5\r\n\r\nb" + atkEnd))
		tc.CloseWrite()
		got, closed := brkReplies(t, tc, tr, 2*time.Second)
		checkReplies(t, got, replies(atkGreeted, atkOpened, atkDataGo, atkQueued))
		if !closed {
			t.Error("the session did not end")
		}
		settled(t, s)
		if sink.Count() != before+1 {
			t.Errorf("the next hop got %d messages, want %d", sink.Count(), before+1)
		}
		brkFreed(t, s)
	})
}

// ---------------------------------------------------------------------------------------------
// Shutdown in each phase.

// TestBreakShutdownPhases calls Shutdown while a session is in each phase, and checks what the
// client reads, whether the message was queued, and how long Shutdown took.
func TestBreakShutdownPhases(t *testing.T) {
	type phase struct {
		name    string
		tls     bool
		setup   string // written before Shutdown; its replies are read
		nSetup  int
		ctx     time.Duration
		after   string   // written after Shutdown began
		want    []string // replies after Shutdown began
		queued  int
		maxTime time.Duration
	}
	for _, p := range []phase{
		{name: "after the greeting", ctx: 3 * time.Second, want: []string{"421 4.3.2 "}, maxTime: time.Second},
		{name: "after EHLO, a partial line held", setup: atkHello + "NOO", nSetup: 1, ctx: 3 * time.Second,
			want: []string{"421 4.3.2 "}, maxTime: time.Second},
		{name: "inside a transaction, finished before the deadline", setup: atkHello + "MAIL FROM:<a@example.net>\r\n", nSetup: 2,
			ctx: 3 * time.Second, after: "RCPT TO:<user1@example.test>\r\nDATA\r\nX: s\r\n\r\nb" + atkEnd + atkQuit,
			want: replies([]string{"250 "}, atkDataGo, atkQueued, atkQuitting), queued: 1, maxTime: 2 * time.Second},
		{name: "inside a transaction, after the message, before QUIT", setup: atkHello + atkEnvelope, nSetup: 3,
			ctx: 3 * time.Second, after: "DATA\r\nX: s\r\n\r\nb" + atkEnd,
			want: replies(atkDataGo, atkQueued, []string{"421 4.3.2 "}), queued: 1, maxTime: 2 * time.Second},
		{name: "inside the data, past the deadline", setup: atkHello + atkEnvelope + "DATA\r\nX: s\r\n\r\nhalf", nSetup: 4,
			ctx: 300 * time.Millisecond, want: []string{"421 4.3.2 "}, maxTime: time.Second},
		{name: "inside a BDAT chunk, past the deadline", setup: atkHello + atkEnvelope + "BDAT 100 LAST\r\nX: s\r\n", nSetup: 3,
			ctx: 300 * time.Millisecond, want: []string{"421 4.3.2 "}, maxTime: time.Second},
		{name: "inside TLS, idle", tls: true, setup: atkHello, nSetup: 1, ctx: 3 * time.Second,
			want: []string{"421 4.3.2 "}, maxTime: time.Second},
		{name: "inside TLS, inside the data, past the deadline", tls: true, setup: atkHello + atkEnvelope + "DATA\r\nX: s\r\n", nSetup: 4,
			ctx: 300 * time.Millisecond, want: []string{"421 4.3.2 "}, maxTime: time.Second},
		{name: "after the 220, before the ClientHello", tls: true, ctx: 3 * time.Second, maxTime: time.Second},
	} {
		t.Run(p.name, func(t *testing.T) {
			s, addr, _, cfg := brkNode(t, true, false, nil)
			base := runtime.NumGoroutine()
			c, r := brkDial(t, addr)
			var rw io.ReadWriter = c
			var rr = r
			var cl net.Conn = c
			if p.tls {
				c.Write([]byte("STARTTLS\r\n"))
				brkUntil220(t, c, r)
				if p.name != "after the 220, before the ClientHello" {
					tc, tr := brkHandshake(t, c, r, cfg.Hostname)
					rw, rr, cl = tc, tr, tc
				}
			}
			if p.setup != "" {
				rw.Write([]byte(p.setup))
				for n := 0; n < p.nSetup; {
					got, _ := brkReplies(t, cl, rr, 500*time.Millisecond)
					if len(got) == 0 {
						t.Fatalf("setup: %d replies of %d", n, p.nSetup)
					}
					n += len(got)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), p.ctx)
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- s.Shutdown(ctx) }()
			time.Sleep(50 * time.Millisecond)
			if p.after != "" {
				rw.Write([]byte(p.after))
			}
			got, closed := brkReplies(t, cl, rr, 2*time.Second)
			checkReplies(t, got, p.want)
			if !closed {
				t.Error("the session was not ended")
			}
			c.Close()
			select {
			case err := <-done:
				if d := time.Since(start); d > p.maxTime+p.ctx/2 {
					t.Errorf("Shutdown took %v (%v)", d, err)
				}
			case <-time.After(p.ctx + 5*time.Second):
				t.Fatal("Shutdown hangs")
			}
			if n := s.Snapshot().MessagesAccepted; n != uint64(p.queued) {
				t.Errorf("queued %d, want %d", n, p.queued)
			}
			brkFreed(t, s)
			brkGoroutines(t, base)
		})
	}
}

// TestBreakShutdownBlockedByAClientThatDoesNotRead: a client pipelines NOOPs (the junk limit is
// set high, as an operator may) and never reads, so go-smtp's reply write blocks with the
// wrapper's write lock held. Shutdown past its deadline says 421 (under that lock) before it
// closes the socket: it must still return within about its deadline plus the 2 s bound of a
// last word, not wait for the session's write timeout (3 s here, 300 s by default).
func TestBreakShutdownBlockedByAClientThatDoesNotRead(t *testing.T) {
	s, addr, _, _ := brkNode(t, false, false, func(c *Config) { c.JunkLimit, c.CommandTimeout = 1<<30, 4*time.Second })
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(atkHello + strings.Repeat("NOOP\r\n", 400000)))
	}()
	// The replies fill both socket buffers: go-smtp's reply write blocks in slotConn.Write.
	// Slow under -race on a loaded machine: millions of reply bytes must fill the buffers first.
	eventually(t, 30*time.Second, "go-smtp blocked writing a reply", func() bool {
		_, dump := brkSessionGoroutines()
		return strings.Contains(dump, "mta.(*slotConn).Write") && strings.Contains(dump, "waitWrite")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	s.Shutdown(ctx)
	if took := time.Since(start); took > 300*time.Millisecond+2500*time.Millisecond {
		t.Errorf("Shutdown took %v", took)
	}
}

// ---------------------------------------------------------------------------------------------
// The waiting line.

// TestBreakWaiterTalksThenHangsUp: a waiter that sends a line before its greeting, then hangs
// up, must leave the line as one that hangs up silently does (docs/mta.md: "a waiting client
// hangs up: it leaves the line at once"); else bots that connect, talk and drop fill the line.
func TestBreakWaiterTalksThenHangsUp(t *testing.T) {
	for _, rst := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset %v", rst), func(t *testing.T) {
			_, addr, _, _ := brkNode(t, false, false, func(c *Config) {
				c.Limit, c.WaitMax, c.ClientCap, c.SlotWait = 1, 1, 10, 30*time.Second
			})
			holder := greeted(t, addr)
			defer holder.conn.Close()
			w, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte("EHLO bot.test\r\n"))
			time.Sleep(100 * time.Millisecond)
			if rst {
				w.(*net.TCPConn).SetLinger(0)
			}
			w.Close()
			time.Sleep(300 * time.Millisecond)
			// The next client must find the line free: it waits (no 421 within the second).
			next := dialRaw(t, addr)
			if got := next.reply(time.Second); got != "" {
				t.Errorf("the next client got %q: the bot that hung up still holds the line", got)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Fuzzing.

// FuzzBreakSplitDialogue sends a dialogue with a fuzzed body, cut into up to eight TCP writes
// at fuzzed offsets: whatever the cuts, the replies are the same six and the next hop gets the
// RFC decoding of the body.
func FuzzBreakSplitDialogue(f *testing.F) {
	for i, b := range brkBodies {
		f.Add([]byte(b), uint64(i))
	}
	f.Add([]byte("..\r\r\r\n.\r.\r\r\n"), uint64(7))
	f.Add([]byte("STARTTLS\r\nDATA\r\nBDAT 3\r\n"), uint64(9))
	_, addr, sink := startFuzzServer(f)
	const mark = "X-Fuzz: split\r\n"
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		data := append(append([]byte(mark), body...), atkEnd...)
		content, end := rfcData(data)
		if end != len(data) || bytes.IndexByte(body, 0) >= 0 || len(body) > 4000 {
			return
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(line) >= 1990 {
				return
			}
		}
		if bytes.Count(bytes.ToLower(body), []byte("received:")) > 0 {
			return
		}
		stream := []byte(atkHello + atkEnvelope + "DATA\r\n" + string(data) + atkQuit)
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var cuts []int
		for range rng.IntN(8) {
			cuts = append(cuts, 1+rng.IntN(len(stream)-1))
		}
		slicesSort(cuts)
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		brkWrite(t, c, stream, cuts, time.Millisecond)
		got, _ := brkReplies(t, c, r, time.Second)
		if len(got) != 6 || !strings.HasPrefix(got[4], atkQueued[0]) {
			t.Fatalf("cuts %v: replies %q", cuts, got)
		}
		var msg []byte
		eventually(t, 5*time.Second, "the message", func() bool {
			for _, m := range sink.Messages() {
				if bytes.Contains(m.Data, []byte(" id "+queuedID(got[4]))) {
					msg = m.Data
					return true
				}
			}
			return false
		})
		_, msg, _ = bytes.Cut(msg, []byte(mark))
		if want := crlf(content[len(mark):]); !bytes.Equal(msg, want) {
			t.Fatalf("cuts %v: the next hop got\n%q\nwant\n%q", cuts, msg, want)
		}
	})
}

func slicesSort(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// ---------------------------------------------------------------------------------------------
// More STARTTLS and BDAT corners.

// TestBreakBDATLastChunkCutShort: a client that dies (FIN: a crash, a close) inside a BDAT LAST
// chunk has not sent the message; the server must not queue the part it got.
func TestBreakBDATLastChunkCutShort(t *testing.T) {
	for _, how := range []string{"close", "half-close"} {
		t.Run(how, func(t *testing.T) {
			s, addr, sink, _ := brkNode(t, false, false, nil)
			c, r := brkDial(t, addr)
			c.Write([]byte(atkHello + atkEnvelope + "BDAT 1000 LAST\r\nSubject: truncated\r\n\r\nthe first line of a"))
			if how == "close" {
				// The replies so far are read first: a close with unread bytes would be a reset.
				got, _ := brkReplies(t, c, r, 300*time.Millisecond)
				checkReplies(t, got, replies(atkGreeted, atkOpened))
				c.Close()
			} else {
				c.(*net.TCPConn).CloseWrite()
				got, _ := brkReplies(t, c, r, time.Second)
				t.Logf("replies %q", got)
			}
			time.Sleep(300 * time.Millisecond)
			snap := settled(t, s)
			if snap.MessagesAccepted != 0 || sink.Count() != 0 {
				t.Errorf("queued %d, next hop got %d: %q", snap.MessagesAccepted, sink.Count(), sink.Messages())
			}
			brkFreed(t, s)
		})
	}
}

// TestBreakSTARTTLSHeldRepliesAtTheErrorLimit: the replies held for a STARTTLS reach the hard
// error limit; the client must read them, then the 421, and no 220.
func TestBreakSTARTTLSHeldRepliesAtTheErrorLimit(t *testing.T) {
	s, addr, _, _ := brkNode(t, true, false, func(c *Config) { c.HardErrorLimit = 2 })
	c, r := brkDial(t, addr)
	c.Write([]byte("EHLO client.test\r\nRCPT TO:<user1@example.test>\r\nRCPT TO:<user1@example.test>\r\nSTARTTLS\r\n"))
	got, closed := brkReplies(t, c, r, brkHeld)
	checkReplies(t, got, []string{"250 ", "502 5.5.1 ", "502 5.5.1 ", "421 4.7.0 "})
	if !closed {
		t.Error("the session did not end")
	}
	brkFreed(t, s)
}

// TestBreakSTARTTLSAfterRefusedDATAAndBDAT: STARTTLS pipelined after a DATA that is refused,
// and after a BDAT chunk of an open transaction, in the same write: it is taken, the replies
// before it come before the 220, and inside TLS the transaction is forgotten.
func TestBreakSTARTTLSAfterRefusedDATAAndBDAT(t *testing.T) {
	s, addr, sink, cfg := brkNode(t, true, false, nil)
	for _, v := range []struct {
		name, pre string
		before    []string
	}{
		{"a refused DATA", "EHLO client.test\r\nDATA\r\n", []string{"250 ", "502 5.5.1 "}},
		{"a BDAT chunk", "EHLO client.test\r\n" + atkEnvelope + "BDAT 12\r\nSubject: x\r\n", []string{"250 ", "250 ", "250 ", "250 2.0.0 "}},
		{"a DATA body", "EHLO client.test\r\n" + atkEnvelope + "DATA\r\nSubject: x\r\n\r\nb" + atkEnd, []string{"250 ", "250 ", "250 ", "354 ", atkQueued[0]}},
	} {
		t.Run(v.name, func(t *testing.T) {
			before := sink.Count()
			c, r := brkDial(t, addr)
			c.Write([]byte(v.pre + "STARTTLS\r\n"))
			got, _ := brkUntil220(t, c, r)
			checkReplies(t, got, v.before)
			tc, tr := brkHandshake(t, c, r, cfg.Hostname)
			tc.Write([]byte("EHLO client.test\r\nBDAT 5 LAST\r\nhello" + atkQuit))
			inside, _ := brkReplies(t, tc, tr, time.Second)
			checkReplies(t, inside, []string{"250 ", "502 5.5.1 ", "221 "})
			settled(t, s)
			want := before
			if v.name == "a DATA body" {
				want++
			}
			if sink.Count() != want {
				t.Errorf("the next hop has %d messages, want %d", sink.Count(), want)
			}
			c.Close()
		})
	}
	brkFreed(t, s)
}

// TestBreakShutdownWithWaiterAndLinger: Shutdown answers a waiter 421 and does not wait on a
// linger longer than its 2 s.
func TestBreakShutdownWithWaiterAndLinger(t *testing.T) {
	s, addr, _, _ := brkNode(t, false, false, func(c *Config) { c.Limit, c.WaitMax, c.SlotWait = 1, 2, 10*time.Second })
	holder, hr := brkDial(t, addr)
	holder.Write([]byte(atkHello + atkQuit))
	brkReplies(t, holder, hr, 300*time.Millisecond) // the 221; the holder keeps its socket open: a linger
	holder2, h2r := brkDial(t, addr)
	holder2.Write([]byte(atkHello))
	brkReplies(t, holder2, h2r, 200*time.Millisecond)
	waiter, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	eventually(t, 2*time.Second, "one waiting", func() bool { return s.Snapshot().Waiting == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	wr := bufio.NewReader(waiter)
	got, _ := brkReplies(t, waiter, wr, time.Second)
	checkReplies(t, got, []string{"421 4.3.2 "})
	got, _ = brkReplies(t, holder2, h2r, time.Second)
	checkReplies(t, got, []string{"421 4.3.2 "})
	select {
	case err := <-done:
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("Shutdown took %v (%v)", d, err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("Shutdown hangs")
	}
	brkGoroutines(t, 0)
}

// TestBreakSTARTTLSInjectionAtEveryOffset writes "EHLO, STARTTLS, MAIL FROM:<evil>" (the
// CVE-2011-0411 injection) in two writes cut at every offset. The MAIL was sent in the clear:
// it must never run inside TLS. Either it is thrown away with the STARTTLS's read, or, arriving
// on its own before the ClientHello, it breaks the handshake and the session ends.
func TestBreakSTARTTLSInjectionAtEveryOffset(t *testing.T) {
	s, addr, _, cfg := brkNode(t, true, true, nil)
	stream := []byte("EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<evil@example.net>\r\n")
	ran, broke := 0, 0
	defer func() {
		t.Logf("%d cuts: %d handshakes broken by the injected bytes, %d injections ran", len(stream)-1, broke, ran)
	}()
	for cut := 1; cut < len(stream); cut++ {
		c, r := brkDial(t, addr)
		brkWrite(t, c, stream, []int{cut}, 3*time.Millisecond)
		before, _ := brkUntil220(t, c, r)
		checkReplies(t, before, []string{"250 "})
		time.Sleep(5 * time.Millisecond) // the second piece is in the server's hands
		tc := tls.Client(c, &tls.Config{ServerName: cfg.Hostname, InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(3 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			broke++
			continue // the injected bytes broke the handshake: the session is over
		}
		tc.Write([]byte("EHLO client.test\r\nRCPT TO:<user1@example.test>\r\nQUIT\r\n"))
		got, _ := brkReplies(t, tc, bufio.NewReader(tc), time.Second)
		if len(got) != 3 || !strings.HasPrefix(got[1], "502 5.5.1 ") {
			t.Errorf("cut %d: inside TLS %q: the injected MAIL ran", cut, got)
			ran++
		}
		c.Close()
	}
	brkFreed(t, s)
}

// TestBreakTimeoutOnALongPartialLine: a command line of 64 octets or more is passed to go-smtp
// before its end. When the command timeout then strikes, go-smtp's line reader (bufio's
// ReadLine) returns the part as a whole line and drops the timeout: the part runs as a command
// instead of the session getting "421 4.4.2" (docs/mta.md: after a read timeout every later
// read fails; the client gets 421 4.4.2).
func TestBreakTimeoutOnALongPartialLine(t *testing.T) {
	t.Run("outside a transaction", func(t *testing.T) {
		s, addr, _, _ := brkNode(t, false, false, func(c *Config) { c.CommandTimeout = 500 * time.Millisecond })
		c, r := brkDial(t, addr)
		c.Write([]byte(atkHello))
		brkReplies(t, c, r, 200*time.Millisecond)
		c.Write([]byte("NOOP " + strings.Repeat("x", 70))) // no line end: the client stalls
		got, closed := brkReplies(t, c, r, 2*time.Second)
		checkReplies(t, got, []string{"421 4.4.2 "})
		if !closed {
			t.Error("the session did not end")
		}
		brkFreed(t, s)
	})
	t.Run("a BDAT LAST line cut by the timeout queues a truncated message", func(t *testing.T) {
		s, addr, sink, _ := brkNode(t, false, false, func(c *Config) { c.CommandTimeout = 500 * time.Millisecond })
		c, r := brkDial(t, addr)
		c.Write([]byte(atkHello + atkEnvelope + "BDAT 22\r\nSubject: cut\r\n\r\nfirst "))
		got, _ := brkReplies(t, c, r, 200*time.Millisecond)
		checkReplies(t, got, replies(atkGreeted, atkOpened, []string{"250 2.0.0 "}))
		// The client means "BDAT 1000 LAST" with padding, and stalls before the line's end.
		c.Write([]byte("BDAT 1000 LAST" + strings.Repeat(" ", 60)))
		got, _ = brkReplies(t, c, r, 2*time.Second)
		checkReplies(t, got, []string{"421 4.4.2 "})
		snap := settled(t, s)
		if snap.MessagesAccepted != 0 || sink.Count() != 0 {
			t.Errorf("queued %d, the next hop got %q", snap.MessagesAccepted, sink.Messages())
		}
		brkFreed(t, s)
	})
}

// TestBreakSTARTTLSDuringShutdown: Shutdown begins while a session is inside DATA (it may
// finish its transaction); the client ends the message and asks for STARTTLS. The session is
// then idle and the node draining: it should get 421 at once (as an idle session does), or at
// least not hold Shutdown for a handshake that never comes. startTLSIfDue runs before the
// draining check and gives the handshake a fresh deadline (the command timeout) over the one
// Shutdown set to wake the session.
func TestBreakSTARTTLSDuringShutdown(t *testing.T) {
	s, addr, _, _ := brkNode(t, true, false, func(c *Config) { c.CommandTimeout = 10 * time.Second })
	c, r := brkDial(t, addr)
	c.Write([]byte(atkHello + atkEnvelope + "DATA\r\nSubject: s\r\n\r\nbody"))
	for n := 0; n < 4; {
		got, _ := brkReplies(t, c, r, 300*time.Millisecond)
		if len(got) == 0 {
			t.Fatal("no 354")
		}
		n += len(got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond)
	c.Write([]byte(atkEnd + "STARTTLS\r\n"))
	got, closed := brkReplyLines(t, c, r, 4*time.Second)
	t.Logf("after the end of data: %q, closed %v, %v after Shutdown began", got, closed, time.Since(start).Round(10*time.Millisecond))
	if len(got) == 0 || !strings.HasPrefix(got[0], atkQueued[0]) {
		t.Errorf("the message got %q", got)
	}
	if len(got) > 1 && strings.HasPrefix(got[1], "220 ") {
		t.Errorf("a draining node said 220 to STARTTLS: %q", got)
	}
	c.Close() // as a client does after a 421; else the lingering close waits for it (2 s)
	err := <-done
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v (%v): the handshake held it to its deadline", d, err)
	}
	brkFreed(t, s)
}

// TestBreakShutdownInsideBDATLastQueuesTruncated: Shutdown past its deadline ends a session
// inside a BDAT LAST chunk with 421, and the client, having read the 421, closes (as clients
// do). When its FIN reaches the server before closeNow has closed the socket, go-smtp's chunk
// copy reads io.EOF, takes it for the chunk's end, and the part of the message received is
// queued and relayed: the client, told 421, will send the message again. A race: up to 8 tries.
func TestBreakShutdownInsideBDATLastQueuesTruncated(t *testing.T) {
	const tries = 8
	for i := range tries {
		s, addr, sink, _ := brkNode(t, false, false, nil)
		c, r := brkDial(t, addr)
		c.Write([]byte(atkHello + atkEnvelope + "BDAT 100 LAST\r\nSubject: s\r\n"))
		brkReplies(t, c, r, 200*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		done := make(chan struct{})
		go func() { s.Shutdown(ctx); close(done) }()
		got, _ := brkReplies(t, c, r, time.Second)
		c.Close() // at once, after the 421
		<-done
		cancel()
		checkReplies(t, got, []string{"421 4.3.2 "})
		if snap := s.Snapshot(); snap.MessagesAccepted > 0 {
			// Delivery has stopped with the node; the spool keeps the message for the next start.
			t.Fatalf("try %d: the session was told 421, yet its 13 octets of a 100-octet chunk were queued "+
				"(accepted %d, in the spool %d, relayed so far %d)", i+1, snap.MessagesAccepted, snap.QueueDepth, sink.Count())
		}
	}
}
