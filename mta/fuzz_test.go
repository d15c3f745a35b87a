package mta

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzReadMessage checks the data normaliser: whatever it accepts has only CRLF line ends and
// no NUL, and starts with the prefix.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{"A: b\r\n\r\nbody\r\n", "x\ry\nz", "\r\r\n\n", "a\x00b", strings.Repeat("Received: x\n", 3)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := readMessage(bytes.NewReader(in), []byte("P: q\r\n"), 1<<20, DefaultHopcountLimit)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(out, []byte("P: q\r\n")) || bytes.IndexByte(out, 0) >= 0 {
			t.Fatalf("readMessage(%q) = %q", in, out)
		}
		for i, c := range out {
			if c == '\r' && (i+1 >= len(out) || out[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, out)
			}
			if c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
	})
}

// FuzzDialogue sends arbitrary client bytes to a real server and checks that every reply line
// is well formed and that the server keeps serving the next client.
func FuzzDialogue(f *testing.F) {
	for _, s := range []string{
		"EHLO a\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<user1@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO a\r\nNOOP\r\nRSET\r\nVRFY x\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<user1@example.test>\r\nBDAT 5 LAST\r\nhelloQUIT\r\n",
		"EHLO a\r\nRCPT TO:<x>\r\nMAIL FROM:<@a:b@c>\r\n\x00\xff\r\n",
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig(f, "127.0.0.1:1")
	cfg.Logger = nil
	cfg.Limit, cfg.CommandTimeout = 50, time.Second
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	f.Cleanup(func() { s.Close() })
	addr := l.Addr().String()
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(in)
		}()
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil || strings.HasPrefix(line, "221 ") {
				break
			}
			if len(line) < 5 || line[0] < '2' || line[0] > '5' || (line[3] != ' ' && line[3] != '-') {
				t.Fatalf("malformed reply line %q to %q", line, in)
			}
		}
	})
}
