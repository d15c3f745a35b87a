package mta

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// rfcData decodes message data from just after the DATA line's CRLF as RFC 5321 section
// 4.1.1.4 says: a line starts only after CRLF, a dot that opens a line is dropped, and the data
// ends at the first line that is a dot alone. It returns the content and where the end marker
// ends, or -1 when stream holds no end.
func rfcData(stream []byte) ([]byte, int) {
	var content []byte
	lineStart := true
	for i := 0; i < len(stream); i++ {
		ch := stream[i]
		if lineStart {
			lineStart = false
			if ch == '.' {
				if bytes.HasPrefix(stream[i+1:], []byte("\r\n")) {
					return content, i + 3
				}
				continue
			}
		}
		content = append(content, ch)
		n := len(content)
		lineStart = ch == '\n' && n >= 2 && content[n-2] == '\r'
	}
	return content, -1
}

// crlf turns every bare CR and bare LF into CRLF, as the MTA does before queueing.
func crlf(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b[i])
		}
	}
	return out
}

func TestRFCDataDecoder(t *testing.T) {
	for _, c := range []struct {
		in, content string
		end         int
	}{
		{"a\r\n.\r\n", "a\r\n", 6},
		{"..x\r\n.\r\n", ".x\r\n", 8},
		{"a\n.\n", "a\n.\n", -1},
		{"a\r.\r\n", "a\r.\r\n", -1},
		{".\rx\r\n.\r\n", "\rx\r\n", 8},
		{"x\r\r\n.\r\n", "x\r\r\n", 7},
		{".\r\n", "", 3},
	} {
		got, end := rfcData([]byte(c.in))
		if string(got) != c.content || end != c.end {
			t.Errorf("rfcData(%q) = %q, %d; want %q, %d", c.in, got, end, c.content, c.end)
		}
	}
}

// FuzzDataArrivesIntact sends a message body, with the DATA command in one write and after the
// 354, and checks that what the next hop gets is the body as the RFC decodes it, line ends made
// CRLF: go-smtp's own data reader loses line starts after bare CRs, which the connection
// wrapper mends (connread.go). A body the server refuses must have a reason to be refused.
func FuzzDataArrivesIntact(f *testing.F) {
	for _, s := range []string{
		"hello",
		"x\r",
		"x\r\r",
		"x\r\r\r",
		".\rx",
		".\r\r\n..y",
		"\r\r\n.\rz\r\r\n.dot",
		"a\r.\rb",
		"a\r\n.\rb\r\n..\r\r\n.",
		"a\n.\nb",
		"..\r\n...\r",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	_, addr, sink := startFuzzServer(f)

	const mark = "X-Fuzz: intact\r\n"
	f.Fuzz(func(t *testing.T, body []byte, oneWrite bool) {
		stream := append(append([]byte(mark), body...), atkEnd...)
		content, end := rfcData(stream)
		if end != len(stream) {
			return // an end of data inside the body: what follows are commands, rightly
		}
		prologue := atkHello + atkEnvelope + "DATA\r\n"
		var res wireResult
		if oneWrite {
			res = attackOnce(t, addr, nil, append([]byte(prologue), append(stream, atkQuit...)...), 0, time.Second)
		} else {
			res = attackOnce(t, addr, []byte(prologue), append(stream, atkQuit...), 4, time.Second)
		}
		if len(res.replies) != 6 {
			t.Fatalf("replies %q, want five to the transaction and the 221", res.replies)
		}
		reply := res.replies[4]
		if !strings.HasPrefix(reply, "250 ") {
			longLine := false
			for line := range bytes.SplitSeq(stream, []byte("\n")) {
				longLine = longLine || len(line) >= 1998
			}
			if reply[0] != '5' || !(longLine || bytes.IndexByte(body, 0) >= 0 ||
				bytes.Count(bytes.ToLower(body), []byte("received:")) > DefaultHopcountLimit) {
				t.Fatalf("the message got %q", reply)
			}
			return
		}
		id := strings.TrimPrefix(reply, atkQueued[0])
		var got []byte
		eventually(t, 5*time.Second, "the message at the next hop", func() bool {
			for _, m := range sink.Messages() {
				if bytes.Contains(m.Data, []byte(" id "+id)) {
					got = m.Data
					return true
				}
			}
			return false
		})
		_, got, _ = bytes.Cut(got, []byte(mark))
		if want := crlf(content[len(mark):]); !bytes.Equal(got, want) {
			t.Fatalf("the next hop got\n%q\nwant\n%q", got, want)
		}
	})
}

// TestParseCommand: the wrapper reads command lines as go-smtp v0.26.0's parseCmd does (verb =
// the first four characters, a space after them on a longer line), and takes STARTTLS alone.
func TestParseCommand(t *testing.T) {
	for _, c := range []struct{ line, verb, arg string }{
		{"EHLO x.test\r\n", "EHLO", "x.test"},
		{"noop\r\n", "NOOP", ""},
		{"NOOP\n", "NOOP", ""},
		{"RSET \r\n", "", ""},  // go-smtp: five characters are a mangled command
		{"NOOPX\r\n", "", ""},  // go-smtp: mangled command
		{"NOOPXY\r\n", "", ""}, // no space after the verb
		{"BDAT" + strings.Repeat(" ", 70) + "5 LAST\r\n", "BDAT", "5 LAST"},
		{"STARTTLS\r\n", "STARTTLS", ""},
		{"starttls \t\r\r\n", "STARTTLS", ""},
		{"STARTTLS foo\r\n", "", ""}, // go-smtp's STARTTLS, with its 502 here
		{"STARTTLSX\r\n", "", ""},
		{" STARTTLS\r\n", "", ""},
		{"\r\n", "", ""},
	} {
		verb, arg := parseCommand([]byte(c.line))
		if verb != c.verb || string(arg) != c.arg {
			t.Errorf("parseCommand(%q) = %q, %q; want %q, %q", c.line, verb, arg, c.verb, c.arg)
		}
	}
	for _, c := range []struct {
		arg  string
		size int64
	}{
		{"5", 5}, {"5 LAST", 5}, {"5 last", 5}, {"0 LAST", 0}, {"0005", 5},
		{"4294967295", 4294967295},
		{"4294967296 LAST", 0}, // over 32 bits: go-smtp's 501, no chunk
		{"100000 LAST X", 0}, {"100000 MORE", 0}, {"+100000", 0}, {"-1", 0}, {"", 0},
	} {
		if got := bdatChunk([]byte(c.arg)); got != c.size {
			t.Errorf("bdatChunk(%q) = %d, want %d", c.arg, got, c.size)
		}
	}
}
