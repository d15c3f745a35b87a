package mta

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtastress/mtastress/testenv"
)

// Protocol attacks against a real Server with testenv's sink as its next hop. Each case writes
// its whole client side in one TCP write after the greeting, as an attacker's script would,
// then checks three things: every reply the server gave, in order; how many messages it
// queued; and what reached the next hop.

// The pieces the cases are made of.
const (
	atkHello    = "EHLO attacker.test\r\n"
	atkEnvelope = "MAIL FROM:<a@example.net>\r\nRCPT TO:<user1@example.test>\r\n"
	atkFirst    = "From: <a@example.net>\r\nSubject: first\r\n\r\nfirst part"
	// atkSmuggled is a second transaction hidden in the first message's body. If any of it
	// ran as commands, the server would queue a message from evil@ to user2.
	atkSmuggled = "MAIL FROM:<evil@example.net>\r\nRCPT TO:<user2@example.test>\r\nDATA\r\n" +
		"From: <evil@example.net>\r\nSubject: smuggled\r\n\r\nsmuggled part"
	atkEnd  = "\r\n.\r\n"
	atkQuit = "QUIT\r\n"
)

// Reply prefixes of an accepted transaction.
var (
	atkGreeted  = []string{"250 "}                     // EHLO
	atkOpened   = []string{"250 2.0.0 ", "250 2.0.0 "} // MAIL, RCPT
	atkDataGo   = []string{"354 "}
	atkQueued   = []string{"250 2.0.0 Ok: queued as "}
	atkQuitting = []string{"221 "}
)

// replies joins reply-prefix lists.
func replies(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// wireResult is what one attack got back.
type wireResult struct {
	replies []string // the last line of each reply, in order
	closed  bool     // the server closed the connection (rather than going quiet)
}

// attackOnce dials addr, reads the greeting, writes first and reads n replies to it, then
// writes stream in one write and collects replies until the server closes the connection or
// stays quiet for quiet.
func attackOnce(t testing.TB, addr string, first, stream []byte, n int, quiet time.Duration) wireResult {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if g, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q, %v", g, err)
	}
	var before []string
	if len(first) > 0 {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
		for len(before) < n {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", before, err)
			}
			if len(line) > 3 && line[3] == ' ' {
				before = append(before, strings.TrimRight(line, "\r\n"))
			}
		}
	}
	// The server may stop reading before the end of a long stream: write on the side, so that
	// replies are read meanwhile, and ignore the write's error (a reset is expected then).
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write(stream)
	}()
	defer func() { <-wrote }()
	res := readReplies(t, c, r, quiet)
	res.replies = append(before, res.replies...)
	return res
}

// readReplies reads reply lines until EOF or quiet passes with nothing new, checking that each
// is well formed (RFC 5321 section 4.2: three digits, then a space or a hyphen).
func readReplies(t testing.TB, c net.Conn, r *bufio.Reader, quiet time.Duration) wireResult {
	t.Helper()
	var res wireResult
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		line, err := r.ReadString('\n')
		if err != nil {
			var ne net.Error
			res.closed = !(errors.As(err, &ne) && ne.Timeout())
			if line != "" {
				t.Errorf("a partial reply line %q before %v", line, err)
			}
			return res
		}
		if !wellFormedReply(line) {
			t.Errorf("malformed reply line %q", line)
		}
		if line[3] == ' ' {
			res.replies = append(res.replies, strings.TrimRight(line, "\r\n"))
		}
	}
}

// wellFormedReply reports whether line is a reply line of RFC 5321 section 4.2: a code from
// 2xx to 5xx, a space or a hyphen, text without control characters, CRLF.
func wellFormedReply(line string) bool {
	if len(line) < 6 || !strings.HasSuffix(line, "\r\n") || (line[3] != ' ' && line[3] != '-') {
		return false
	}
	if line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
		return false
	}
	for _, c := range []byte(line[4 : len(line)-2]) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// checkReplies fails unless got has exactly one reply per prefix in want, in order.
func checkReplies(t *testing.T, got, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}
	if !ok {
		t.Errorf("replies:\n  got  %s\n  want %s", quoteAll(got), quoteAll(want))
	}
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 60 {
			s = s[:60] + "…"
		}
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// settled waits until everything s accepted has been delivered, so that a message that was
// going to reach the sink has reached it.
func settled(t *testing.T, s *Server) Snapshot {
	t.Helper()
	var snap Snapshot
	eventually(t, 10*time.Second, "the queue to drain", func() bool {
		snap = s.Snapshot()
		return snap.QueueDepth == 0 && snap.MessagesDelivered+snap.MessagesBounced == snap.MessagesAccepted
	})
	return snap
}

// cleanLineEnds fails if data holds a CR or LF that is not part of a CRLF, or a NUL: what a
// next hop that treats them differently from us could be fooled by.
func cleanLineEnds(t *testing.T, data []byte) {
	t.Helper()
	for i, c := range data {
		switch {
		case c == '\r' && (i+1 >= len(data) || data[i+1] != '\n'):
			t.Errorf("a lone CR reached the next hop at %d: %q", i, around(data, i))
		case c == '\n' && (i == 0 || data[i-1] != '\r'):
			t.Errorf("a bare LF reached the next hop at %d: %q", i, around(data, i))
		case c == 0:
			t.Errorf("a NUL reached the next hop at %d: %q", i, around(data, i))
		}
	}
}

func around(b []byte, i int) []byte { return b[max(i-20, 0):min(i+20, len(b))] }

// attackCase is one row: a stream, the replies it must get, and what must reach the sink.
type attackCase struct {
	name string
	// first, if set, is written and its replies read (firstReplies of them) before stream:
	// for attacks that need the session in a state, such as inside DATA, before the blow.
	first        string
	firstReplies int
	stream       string
	want         []string // reply prefixes, in order
	closed       bool     // the server must have closed the connection (no QUIT was answered)
	queued       int      // messages the server accepted
	// sink checks the messages at the next hop, after every accepted one was delivered.
	sink func(t *testing.T, msgs []testenv.SinkMessage)
	// edit changes the server's config for this row.
	edit func(*Config)
}

// runAttacks runs each case against a fresh server and sink.
func runAttacks(t *testing.T, cases []attackCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := startSink(t)
			cfg := testConfig(t, sink.Addr())
			cfg.MaxMessageBytes = 64 << 10
			if c.edit != nil {
				c.edit(&cfg)
			}
			s, addr := startServer(t, cfg)
			res := attackOnce(t, addr, []byte(c.first), []byte(c.stream), c.firstReplies, 2*time.Second)
			if c.closed {
				// The server hangs up while the client is still sending; its lingering close
				// still gets every reply to the client (TestLastWordsReachAClientStillSending).
				if !res.closed {
					t.Errorf("the server left the connection open")
				}
			}
			checkReplies(t, res.replies, c.want)
			snap := settled(t, s)
			if snap.MessagesAccepted != uint64(c.queued) {
				t.Errorf("the server queued %d messages, want %d", snap.MessagesAccepted, c.queued)
			}
			msgs := sink.Messages()
			if len(msgs) != c.queued {
				t.Errorf("the next hop received %d messages, want %d", len(msgs), c.queued)
			}
			for _, m := range msgs {
				cleanLineEnds(t, m.Data)
			}
			if c.sink != nil {
				c.sink(t, msgs)
			}
			// Whatever the attack did, the node goes on serving the next client.
			next := greeted(t, addr)
			expect(t, "the next client's MAIL", next.cmd("MAIL FROM:<b@example.net>"), "250 ")
		})
	}
}

// oneMessageHolding checks that the sink got exactly the first transaction's message, to user1
// only, and that it holds every part named (the smuggled commands arrive as body text).
func oneMessageHolding(parts ...string) func(t *testing.T, msgs []testenv.SinkMessage) {
	return func(t *testing.T, msgs []testenv.SinkMessage) {
		t.Helper()
		if len(msgs) != 1 {
			return // counted already
		}
		m := msgs[0]
		if m.From != "a@example.net" || len(m.To) != 1 || m.To[0] != "user1@example.test" {
			t.Errorf("envelope from %q to %v, want a@example.net to [user1@example.test]", m.From, m.To)
		}
		for _, p := range parts {
			if !bytes.Contains(m.Data, []byte(p)) {
				t.Errorf("the message does not hold %q:\n%s", p, m.Data)
			}
		}
	}
}

// TestSMTPSmuggling sends a message whose body hides a second transaction behind every
// end-of-data that is not <CRLF>.<CRLF> (RFC 5321 section 4.1.1.4), in one write. The server
// must see one message, and the next hop must get one message in which no bare CR or LF is
// left for a laxer server downstream to read as the end (docs/mta.md, "Recipient policy and
// replies").
func TestSMTPSmuggling(t *testing.T) {
	accepted := replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting)
	var cases []attackCase
	for _, v := range []struct{ name, eod string }{
		{"a bare LF dot bare LF", "\n.\n"},
		{"a bare CR dot bare CR", "\r.\r"},
		{"a bare LF dot CRLF", "\n.\r\n"},
		{"a CRLF dot bare LF", "\r\n.\n"},
		{"a bare CR dot CRLF", "\r.\r\n"},
		{"a CRLF dot bare CR", "\r\n.\r"},
		{"a bare LF dot bare CR", "\n.\r"},
		{"a CRLF dot space CRLF", "\r\n. \r\n"},
	} {
		cases = append(cases, attackCase{
			name:   "the end of data written as " + v.name + " is body text",
			stream: atkHello + atkEnvelope + "DATA\r\n" + atkFirst + v.eod + atkSmuggled + atkEnd + atkQuit,
			want:   accepted,
			queued: 1,
			sink:   oneMessageHolding("first part", "smuggled part", "MAIL FROM:<evil@example.net>"),
		})
	}
	cases = append(cases,
		attackCase{
			name: "a body with only bare LF line ends is relayed with CRLF",
			stream: atkHello + atkEnvelope + "DATA\r\n" +
				strings.ReplaceAll(atkFirst+"\r\n"+atkSmuggled, "\r\n", "\n") + atkEnd + atkQuit,
			want:   accepted,
			queued: 1,
			sink:   oneMessageHolding("first part\r\nMAIL FROM:<evil@example.net>\r\n"),
		},
		attackCase{
			name: "a body with only bare CR line ends is relayed with CRLF",
			stream: atkHello + atkEnvelope + "DATA\r\n" +
				strings.ReplaceAll(atkFirst+"\r\n"+atkSmuggled, "\r\n", "\r") + atkEnd + atkQuit,
			want:   accepted,
			queued: 1,
			sink:   oneMessageHolding("first part\r\nMAIL FROM:<evil@example.net>\r\n"),
		},
		attackCase{
			name:   "a dot-stuffed line is body text and keeps one dot",
			stream: atkHello + atkEnvelope + "DATA\r\n" + atkFirst + "\r\n..\r\n" + atkSmuggled + atkEnd + atkQuit,
			want:   accepted,
			queued: 1,
			sink:   oneMessageHolding("first part\r\n.\r\nMAIL FROM:<evil@example.net>"),
		},
		// The control: a real end of data does end the message, and a second transaction
		// pipelined after it is a second message. The harness counts right.
		attackCase{
			name: "a proper end of data followed by a second transaction is two messages",
			stream: atkHello + atkEnvelope + "DATA\r\n" + atkFirst + atkEnd +
				"MAIL FROM:<b@example.net>\r\nRCPT TO:<user2@example.test>\r\n" +
				"DATA\r\nSubject: second\r\n\r\nsecond part" +
				atkEnd + atkQuit,
			want:   replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkOpened, atkDataGo, atkQueued, atkQuitting),
			queued: 2,
		},
	)
	runAttacks(t, cases)
}

// TestPipelinedFloods sends many commands in one write. Postfix's limits decide where each
// flood is cut (docs/mta.md, "Slots and stress"): junk commands past the junk limit and error
// replies count as errors, and at the hard error limit the session gets 421 and ends.
func TestPipelinedFloods(t *testing.T) {
	many := func(n int, s string) string { return strings.Repeat(s, n) }
	var rcpts strings.Builder
	for i := range 1100 {
		fmt.Fprintf(&rcpts, "RCPT TO:<user%d@example.test>\r\n", i)
	}
	var msgs strings.Builder
	for i := range 200 {
		fmt.Fprintf(&msgs, "%sDATA\r\nSubject: %d\r\n\r\npipelined%s", atkEnvelope, i, atkEnd)
	}
	limits := func(c *Config) { c.JunkLimit, c.HardErrorLimit, c.MaxRecipients = 10, 5, 1000 }
	runAttacks(t, []attackCase{
		{
			name:   "a flood of NOOPs is cut at the junk and error limits",
			stream: atkHello + many(5000, "NOOP\r\n") + atkQuit,
			edit:   limits,
			want:   []string{"421 4.7.0 "},
			closed: true,
		},
		{
			// go-smtp's own limit of three protocol errors comes first: it says 500 after the
			// fourth refusal and closes.
			name:   "a flood of unknown commands is cut off after four",
			stream: atkHello + many(1000, "XYZZY\r\n") + atkQuit,
			want:   replies(atkGreeted, slicesRepeat("501 5.5.2 ", 4), []string{"500 5.5.1 "}),
			closed: true,
		},
		{
			name: "a flood of recipients stops at the recipient limit and the session is closed",
			stream: atkHello + "MAIL FROM:<a@example.net>\r\n" + rcpts.String() +
				"DATA\r\n" + atkFirst + atkEnd + atkQuit,
			edit: limits,
			want: replies(atkGreeted, []string{"250 "}, slicesRepeat("250 ", 1000),
				slicesRepeat("452 4.5.3 ", 5), []string{"421 4.7.0 "}),
			closed: true,
		},
		{
			name:   "two hundred pipelined transactions are two hundred messages, each once",
			stream: atkHello + msgs.String() + atkQuit,
			want:   replies(atkGreeted, repeatReplies(200, atkOpened, atkDataGo, atkQueued), atkQuitting),
			queued: 200,
			sink: func(t *testing.T, msgs []testenv.SinkMessage) {
				seen := map[string]int{}
				for _, m := range msgs {
					i := bytes.Index(m.Data, []byte("Subject: "))
					j := bytes.Index(m.Data[i:], []byte("\r\n"))
					seen[string(m.Data[i:i+j])]++
				}
				if len(seen) != 200 {
					t.Errorf("%d distinct messages at the next hop, want 200", len(seen))
				}
			},
		},
	})
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func repeatReplies(n int, parts ...[]string) []string {
	one := replies(parts...)
	var out []string
	for range n {
		out = append(out, one...)
	}
	return out
}

// TestOversizedInput sends lines and messages over the limits with more of the stream after
// them: what follows must be either refused with the session or read as what it is, never as
// a command that the oversized part was hiding.
func TestOversizedInput(t *testing.T) {
	longLine := strings.Repeat("x", 5000)
	// Command-like lines that sit past the size limit inside the body.
	bigBody := strings.Repeat(strings.Repeat("y", 900)+"\r\n", 80) + atkSmuggled
	runAttacks(t, []attackCase{
		{
			// go-smtp refuses a whole read that holds an over-long line, so the commands
			// before it in the same write go unanswered too: nothing in it runs.
			name: "a command line over 2000 octets ends the session, unanswered commands and all",
			stream: atkHello + "MAIL FROM:<" + longLine + "@example.net>\r\n" + atkEnvelope +
				"DATA\r\n" + atkFirst + atkEnd + atkQuit,
			want:   []string{"500 5.4.0 "},
			closed: true,
		},
		{
			name:         "a command line over 2000 octets after EHLO ends the session before the commands after it",
			first:        atkHello,
			firstReplies: 1,
			stream: "MAIL FROM:<" + longLine + "@example.net>\r\n" + atkEnvelope +
				"DATA\r\n" + atkFirst + atkEnd + atkQuit,
			want:   replies(atkGreeted, []string{"500 5.4.0 "}),
			closed: true,
		},
		{
			name:         "a body line over 2000 octets is refused and the session ends before the smuggled part",
			first:        atkHello + atkEnvelope + "DATA\r\n",
			firstReplies: 4,
			stream:       atkFirst + longLine + atkEnd + atkSmuggled + atkEnd + atkQuit,
			// go-smtp's line limit stays tripped after our 554: its own 500 closes.
			want:   replies(atkGreeted, atkOpened, atkDataGo, []string{"554 5.6.0 ", "500 5.4.0 "}),
			closed: true,
		},
		{
			name: "a message over the size limit is refused whole and the next transaction is read as one",
			stream: atkHello + atkEnvelope + "DATA\r\n" + atkFirst + "\r\n" + bigBody + atkEnd +
				atkEnvelope + "DATA\r\nSubject: after\r\n\r\nafter the big one" + atkEnd + atkQuit,
			want: replies(atkGreeted, atkOpened, atkDataGo, []string{"552 5.3.4 "},
				atkOpened, atkDataGo, atkQueued, atkQuitting),
			queued: 1,
			sink:   oneMessageHolding("after the big one"),
		},
		{
			// The data after a refused DATA is read as commands: RFC 2920 section 3.1 has the
			// client wait for the 354, and these lines are no commands. go-smtp's limit of
			// three protocol errors then closes the session.
			name: "a declared size over the limit is refused at MAIL and the data sent anyway is refused line by line",
			stream: atkHello + "MAIL FROM:<a@example.net> SIZE=100000000\r\nRCPT TO:<user1@example.test>\r\nDATA\r\n" +
				atkFirst + atkEnd + atkQuit,
			want: replies(atkGreeted, []string{"552 5.3.4 ", "502 5.5.1 ", "502 5.5.1 "},
				[]string{"501 5.5.2 ", "501 5.5.2 ", "500 5.5.2 ", "501 5.5.2 ", "500 5.5.1 "}),
			closed: true,
		},
	})
}

// TestRefusedBDATLeavesTheStreamInStep sends BDAT chunks that are refused, with command-like
// bytes inside them and more commands after them (RFC 3030 section 2: a refused chunk is
// still read and thrown away, so the stream stays in step).
func TestRefusedBDATLeavesTheStreamInStep(t *testing.T) {
	bdat := func(chunk string, last bool) string {
		s := fmt.Sprintf("BDAT %d", len(chunk))
		if last {
			s += " LAST"
		}
		return s + "\r\n" + chunk
	}
	legit := "Subject: legit\r\n\r\nlegit part\r\n"
	big := strings.Repeat(atkSmuggled+"\r\n", 70<<10/len(atkSmuggled)+1)
	runAttacks(t, []attackCase{
		{
			name:   "a chunk before any MAIL is refused and its bytes are skipped",
			stream: atkHello + bdat(atkSmuggled+"\r\n", false) + atkEnvelope + bdat(legit, true) + atkQuit,
			want:   replies(atkGreeted, []string{"502 5.5.1 "}, atkOpened, atkQueued, atkQuitting),
			queued: 1,
			sink:   oneMessageHolding("legit part"),
		},
		{
			name: "a chunk over the size limit is refused, and a LAST chunk after it is refused for want of MAIL",
			stream: atkHello + atkEnvelope + bdat(big, false) + bdat(atkSmuggled, true) +
				atkEnvelope + bdat(legit, true) + atkQuit,
			want: replies(atkGreeted, atkOpened, []string{"552 5.3.4 ", "502 5.5.1 "},
				atkOpened, atkQueued, atkQuitting),
			queued: 1,
			sink:   oneMessageHolding("legit part"),
		},
		{
			name: "a chunk holding a NUL is refused at LAST and the next transaction goes through",
			stream: atkHello + atkEnvelope + bdat("Subject: x\r\n\r\na\x00b\r\n", false) + bdat(atkSmuggled, true) +
				atkEnvelope + bdat(legit, true) + atkQuit,
			want:   replies(atkGreeted, atkOpened, []string{"250 ", "554 5.6.0 "}, atkOpened, atkQueued, atkQuitting),
			queued: 1,
			sink:   oneMessageHolding("legit part"),
		},
		{
			name: "DATA in the middle of chunks is refused and the chunks go on",
			stream: atkHello + atkEnvelope + bdat("Subject: legit\r\n", false) + "DATA\r\n" +
				bdat("\r\nlegit part\r\n", true) + atkQuit,
			want:   replies(atkGreeted, atkOpened, []string{"250 ", "502 5.5.1 "}, atkQueued, atkQuitting),
			queued: 1,
			sink:   oneMessageHolding("legit part"),
		},
	})
}

// TestNULBytes puts NUL bytes where RFC 5321 section 4.5.2 allows none: in the data, in
// commands and in the EHLO name. None may reach the next hop.
func TestNULBytes(t *testing.T) {
	second := atkEnvelope + "DATA\r\nSubject: second\r\n\r\nsecond part" + atkEnd
	runAttacks(t, []attackCase{
		{
			name:   "a NUL in the body refuses the message and the next transaction goes through",
			stream: atkHello + atkEnvelope + "DATA\r\n" + atkFirst + "\x00" + atkSmuggled + atkEnd + second + atkQuit,
			want: replies(atkGreeted, atkOpened, atkDataGo, []string{"554 5.6.0 "},
				atkOpened, atkDataGo, atkQueued, atkQuitting),
			queued: 1,
			sink:   oneMessageHolding("second part"),
		},
		{
			name:   "a NUL in a header refuses the message",
			stream: atkHello + atkEnvelope + "DATA\r\nSubject: a\x00b\r\n\r\nbody" + atkEnd + atkQuit,
			want:   replies(atkGreeted, atkOpened, atkDataGo, []string{"554 5.6.0 "}, atkQuitting),
		},
		{
			name:   "a NUL in the sender address is refused",
			stream: atkHello + "MAIL FROM:<a\x00b@example.net>\r\n" + atkQuit,
			want:   replies(atkGreeted, []string{"553 5.1.7 "}, atkQuitting),
		},
		{
			name:   "a NUL in a recipient address is refused",
			stream: atkHello + "MAIL FROM:<a@example.net>\r\nRCPT TO:<user1\x00@example.test>\r\n" + atkQuit,
			want:   replies(atkGreeted, []string{"250 ", "553 5.1.3 "}, atkQuitting),
		},
		{
			// The EHLO goes first because go-smtp echoes the name, NUL and all, in its reply:
			// TestRepliesCarryNoControlCharacters.
			name:         "a NUL in the EHLO name never reaches the Received header",
			first:        "EHLO evil\x00name.test\r\n",
			firstReplies: 1,
			stream:       second + atkQuit,
			want:         replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting),
			queued:       1,
			sink:         oneMessageHolding("second part", "from evil?name.test"),
		},
		{
			name:   "a NUL before a command makes it a bad command",
			stream: atkHello + "\x00MAIL FROM:<a@example.net>\r\n" + atkQuit,
			want:   replies(atkGreeted, []string{"501 5.5.2 "}, atkQuitting),
		},
	})
}

// TestRepliesCarryNoControlCharacters sends control characters where go-smtp copies the
// client's words into its reply: the EHLO and HELO name ("Hello <name>") and an unknown verb
// ("Syntax errors, <verb> command unrecognized"). A reply is text without control
// characters (RFC 5321 section 4.2, textstring); a lone CR or a NUL echoed back breaks that.
func TestRepliesCarryNoControlCharacters(t *testing.T) {
	sink := startSink(t)
	_, addr := startServer(t, testConfig(t, sink.Addr()))
	for _, c := range []struct{ name, stream string }{
		{"a NUL in the EHLO name", "EHLO evil\x00name.test\r\n"},
		{"a lone CR in the EHLO name", "EHLO evil\rname.test\r\n"},
		{"a NUL in the HELO name", "HELO evil\x00name.test\r\n"},
		{"a control character in a second EHLO", atkHello + "EHLO evil\x01name.test\r\n"},
		{"a control character in an unknown verb", atkHello + "XYZ\x01\r\n"},
	} {
		t.Run(c.name+" is not echoed", func(t *testing.T) {
			res := attackOnce(t, addr, nil, []byte(c.stream+atkQuit), 0, 2*time.Second)
			if n := len(res.replies); n == 0 || !strings.HasPrefix(res.replies[n-1], "221 ") {
				t.Errorf("replies %q, want the session to end with 221", res.replies)
			}
		})
	}
}

// TestLastWordsReachAClientStillSending checks that the replies before a session is ended
// with 421 (too many errors), and the 421 itself, reach a pipelining client that reads slowly
// (RFC 2920 section 3.1 lets a client write a whole group before reading). Closing the socket
// with the client's bytes unread would make Linux send a reset at once and throw away the
// replies still queued; the lingering close in conn.go reads on until the client closes.
func TestLastWordsReachAClientStillSending(t *testing.T) {
	sink := startSink(t)
	_, addr := startServer(t, testConfig(t, sink.Addr()))
	// A thousand accepted recipients make more replies than the client's small receive
	// buffer holds; the recipient limit (1000) refuses the next ones with 452 4.5.3 (RFC 5321
	// section 4.5.3.1.10), and twenty of those errors end the session; more is on its way.
	var b strings.Builder
	b.WriteString(atkHello + "MAIL FROM:<a@example.net>\r\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "RCPT TO:<user%d@example.test>\r\n", i)
	}
	b.WriteString(strings.Repeat("RCPT TO:<x@elsewhere.example>\r\n", 20000))
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
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(b.String())) // returns with a reset once the server has hung up
	time.Sleep(200 * time.Millisecond)
	res := readReplies(t, c, bufio.NewReader(c), 2*time.Second)
	want := replies([]string{"220 "}, atkGreeted, []string{"250 "}, slicesRepeat("250 ", 1000),
		slicesRepeat("452 4.5.3 ", 20), []string{"421 4.7.0 "})
	if len(res.replies) != len(want) {
		t.Fatalf("%d replies arrived, want %d; the last: %q",
			len(res.replies), len(want), res.replies[max(len(res.replies)-1, 0):])
	}
	checkReplies(t, res.replies, want)
}

// TestStalledDataNeverRunsAsCommands stalls inside the message until the command timeout cuts
// the session, then sends the rest: the end of the data and a second transaction. go-smtp on
// its own would go on reading commands from where the body stopped (go-smtp issue 196); here
// every read after the timeout fails (docs/mta.md, "Slots and stress").
func TestStalledDataNeverRunsAsCommands(t *testing.T) {
	rest := atkEnd + atkSmuggled + atkEnd + atkQuit
	cases := []struct{ name, first, stalled, rest string }{
		{"a stalled DATA", atkHello + atkEnvelope + "DATA\r\n", "Subject: stalled\r\n\r\nhalf a body", rest},
		{"a stalled BDAT chunk", atkHello + atkEnvelope, "BDAT 200 LAST\r\nSubject: stalled\r\n\r\nhalf a chunk",
			"\r\n" + strings.Repeat("x", 200-len("Subject: stalled\r\n\r\nhalf a chunk")-2) + rest},
		{"a stall between RCPT and DATA", atkHello + atkEnvelope, "", "DATA\r\nSubject: late\r\n\r\nlate" + rest},
	}
	for _, c := range cases {
		t.Run(c.name+" is cut off and the bytes after it are never commands", func(t *testing.T) {
			sink := startSink(t)
			cfg := testConfig(t, sink.Addr())
			cfg.CommandTimeout = 300 * time.Millisecond
			s, addr := startServer(t, cfg)
			cl := dialRaw(t, addr)
			expect(t, "greeting", cl.reply(5*time.Second), "220 ")
			cl.conn.Write([]byte(c.first + c.stalled))
			var got []string
			for range strings.Count(c.first, "\r\n") {
				got = append(got, cl.reply(5*time.Second))
			}
			// Nothing more is sent until the timeout has spoken.
			got = append(got, cl.reply(5*time.Second))
			cl.conn.Write([]byte(c.rest))
			res := readReplies(t, cl.conn, cl.r, time.Second)
			got = append(got, res.replies...)

			want := replies(atkGreeted, atkOpened)
			if strings.HasSuffix(c.first, "DATA\r\n") {
				want = append(want, atkDataGo...)
			}
			// Between commands go-smtp words the timeout itself: 421 4.4.0 "connection error".
			checkReplies(t, got, append(want, "421 4.4."))
			if !res.closed {
				t.Errorf("the connection is still open after the timeout")
			}
			if snap := settled(t, s); snap.MessagesAccepted != 0 || sink.Count() != 0 {
				t.Errorf("queued %d, next hop got %d; want nothing", snap.MessagesAccepted, sink.Count())
			}
		})
	}
}

// FuzzDataNeverRunsAsCommands is the dialogue fuzz target for the message body: whatever the
// body holds short of a real end of data (<CRLF>.<CRLF>), the server gives exactly one reply
// to the whole message, then the 221 to QUIT, with every reply well formed; it never answers
// the body's bytes as commands, and it queues at most one message. FuzzDialogue (fuzz_test.go)
// covers the command stream itself.
func FuzzDataNeverRunsAsCommands(f *testing.F) {
	for _, s := range []string{
		"Subject: x\r\n\r\nhello",
		"a\n.\nMAIL FROM:<evil@example.net>\nRCPT TO:<user2@example.test>\nDATA\nx\n.\n",
		"a\r.\rRSET\r.\r\n",
		"a\r\n.\nQUIT\r\n",
		"\r\n..\r\nNOOP\r\n",
		"a\x00b\r\n.\x00\r\nRSET",
		"BDAT 5 LAST\r\nhello",
		strings.Repeat("Received: x\r\n", 101),
		strings.Repeat("y", 2100) + "\r\nRSET",
	} {
		f.Add([]byte(s))
	}
	s, addr, _ := startFuzzServer(f)

	f.Fuzz(func(t *testing.T, body []byte) {
		// The DATA line's CRLF starts the first line; the end we send is at the body's end.
		framed := append(append([]byte("\r\n"), body...), atkEnd...)
		if bytes.Index(framed, []byte(atkEnd)) < 2+len(body) {
			return // a real end of data inside: what follows are commands, rightly
		}
		before := s.Snapshot().MessagesAccepted
		// The body goes in a write of its own, after the 354: go-smtp refuses a whole read
		// that holds an over-long line, commands before it included.
		prologue := []byte(atkHello + atkEnvelope + "DATA\r\n")
		res := attackOnce(t, addr, prologue, append(body, atkEnd+atkQuit...), 4, time.Second)
		if len(res.replies) < 4 {
			t.Fatalf("replies %q: the transaction did not reach DATA", res.replies)
		}
		head, after := res.replies[:4], res.replies[4:]
		for i, p := range replies(atkGreeted, atkOpened, atkDataGo) {
			if !strings.HasPrefix(head[i], p) {
				t.Fatalf("reply %d is %q, want %q", i, head[i], p)
			}
		}
		// One reply to the message, then the 221; after an over-long line go-smtp's own 500
		// takes the 221's place, as it hangs up.
		longLine := len(after) == 2 && strings.HasPrefix(after[0], "554 5.6.0 Line too long") &&
			strings.HasPrefix(after[1], "500 5.4.0 ")
		switch {
		case len(after) != 2:
			t.Fatalf("after the 354: %q, want one reply to the message and the 221", after)
		case !longLine && !strings.HasPrefix(after[1], "221 "):
			t.Fatalf("after the message's reply: %q, want 221", after[1])
		case !strings.HasPrefix(after[0], "250 2.0.0 Ok: queued") && after[0][0] != '4' && after[0][0] != '5':
			t.Fatalf("the message got %q", after[0])
		}
		if n := s.Snapshot().MessagesAccepted - before; n > 1 || (n == 1) != strings.HasPrefix(after[0], "250 ") {
			t.Fatalf("%d messages queued for one body answered %q", n, after[0])
		}
	})
}

// TestBareCRBeforeTheEndOfData ends a message whose last line ends in a lone CR: "x\r" then
// <CRLF>.<CRLF>. That is a proper end of data; go-smtp v0.26.0's data reader moves to mid-line
// on the second CR instead of treating it as a possible line end, and on its own would miss the
// end: the server would wait for more data, the client for a reply, until the command timeout.
// The connection wrapper mends that (connread.go); these cases check it, in one write with the
// commands and with the body after the 354.
func TestBareCRBeforeTheEndOfData(t *testing.T) {
	runAttacks(t, []attackCase{{
		name:   "a lone CR right before the end of data does not hide the end",
		stream: atkHello + atkEnvelope + "DATA\r\n" + atkFirst + "\r" + atkEnd + atkQuit,
		edit:   func(c *Config) { c.CommandTimeout = 500 * time.Millisecond },
		want:   replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting),
		queued: 1,
		sink:   oneMessageHolding("first part\r\n"),
	}})
}

// TestSTARTTLSCommandInjection pipelines commands behind STARTTLS in the same write, before
// the handshake (CVE-2011-0411 in Postfix): they were sent in the clear, so RFC 3207 section
// 4.2 has them thrown away; run after the handshake they would pass as the encrypted client's.
func TestSTARTTLSCommandInjection(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.TLSCertFile, cfg.TLSKeyFile = attackCert(t, cfg.Hostname)
	_, addr := startServer(t, cfg)

	c := dialRaw(t, addr)
	expect(t, "greeting", c.reply(5*time.Second), "220 ")
	c.send("EHLO attacker.test\r\nSTARTTLS\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<user2@example.test>")
	expect(t, "EHLO", c.reply(5*time.Second), "250 ")
	expect(t, "STARTTLS", c.reply(5*time.Second), "220 ")
	tc := tls.Client(c.conn, &tls.Config{ServerName: cfg.Hostname, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	tc.Write([]byte("EHLO attacker.test\r\nDATA\r\nQUIT\r\n"))
	res := readReplies(t, tc, bufio.NewReader(tc), 2*time.Second)
	// DATA without a MAIL and RCPT of its own: the injected ones never ran.
	checkReplies(t, res.replies, replies(atkGreeted, []string{"502 5.5.1 "}, atkQuitting))
}

// attackCert writes a self-signed certificate for host and returns its files.
func attackCert(t *testing.T, host string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestPipelinedBodyIsNotCommands sends DATA and the body in one write, against the advice of
// RFC 2920 section 3.1 (DATA ends a group; the body waits for the 354). The wrapper looks at
// the bytes after the DATA line only once go-smtp has answered it, so a body full of junk
// commands does not count toward the junk limit, and is queued whole; after a refused DATA the
// same bytes are commands, and count. (At the limit the commands of that read not yet run are
// dropped with the 421.)
func TestPipelinedBodyIsNotCommands(t *testing.T) {
	body := "Subject: junk\r\n\r\nNOOP\r\nRSET\r\nVRFY x\r\nNOOP"
	runAttacks(t, []attackCase{{
		name:   "a body sent with DATA is data",
		stream: atkHello + atkEnvelope + "DATA\r\n" + body + atkEnd + atkQuit,
		edit:   func(c *Config) { c.JunkLimit, c.HardErrorLimit = 1, 1 },
		want:   replies(atkGreeted, atkOpened, atkDataGo, atkQueued, atkQuitting),
		queued: 1,
		sink:   oneMessageHolding("NOOP\r\nRSET\r\nVRFY x\r\nNOOP\r\n"),
	}, {
		name:   "after a refused DATA the same bytes are commands",
		stream: atkHello + "DATA\r\nNOOP\r\nNOOP\r\n" + atkQuit,
		edit:   func(c *Config) { c.JunkLimit, c.HardErrorLimit = 2, 2 },
		want:   replies(atkGreeted, []string{"502 5.5.1 ", "421 4.7.0 "}),
		closed: true,
	}})
}

// startFuzzServer starts the one server a fuzz target's inputs share, quiet, with room for
// many sessions and a short command timeout, relaying to a recording sink.
func startFuzzServer(f *testing.F) (*Server, string, *testenv.Sink) {
	sink, err := testenv.StartSink(testenv.SinkOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(sink.Stop)
	cfg := testConfig(f, sink.Addr())
	cfg.Logger = nil
	cfg.Limit, cfg.CommandTimeout, cfg.MaxMessageBytes = 50, 2*time.Second, 64<<10
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(l)
	f.Cleanup(func() { s.Close() })
	return s, l.Addr().String(), sink
}
