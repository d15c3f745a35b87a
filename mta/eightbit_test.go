package mta

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestEightBitRelay(t *testing.T) {
	sink := startSink(t)
	plain := startNoEightBitHop(t)
	cfg := testConfig(t, sink.Addr())
	cfg.Transports = map[string]string{"old.test": plain.addr}
	cfg.RelayNetworks = nil
	cfg.Domains = []string{"example.test", "old.test"}
	_, addr := startServer(t, cfg)
	eight := "From: <a@example.net>\r\nSubject: caf\xc3\xa9\r\nX-Mtastress-Id: %s\r\n\r\nd\xc3\xa9j\xc3\xa0 vu\r\n"

	t.Run("an 8-bit message reaches a hop that offers 8BITMIME, declared", func(t *testing.T) {
		c := greeted(t, addr)
		expect(t, "MAIL", c.cmd("MAIL FROM:<a@example.net> BODY=8BITMIME"), "250 ")
		expect(t, "RCPT", c.cmd("RCPT TO:<user1@example.test>"), "250 ")
		expect(t, "DATA", c.cmd("DATA"), "354 ")
		c.conn.Write([]byte(strings.Replace(eight, "%s", "8bit-ok", 1)))
		expect(t, "dot", c.cmd("."), "250 ")
		eventually(t, 10*time.Second, "delivery", func() bool { return headerCount(sink, "X-Mtastress-Id: 8bit-ok") == 1 })
	})

	t.Run("an 8-bit message to a hop without 8BITMIME is bounced with the reason", func(t *testing.T) {
		c := greeted(t, addr)
		// Undeclared 8-bit data is 8-bit all the same.
		body := strings.Replace(eight, "%s", "8bit-refused", 1)
		expect(t, "message", c.sendMessage("a@example.net", []string{"user@old.test"}, body), "250 ")
		eventually(t, 10*time.Second, "the bounce", func() bool {
			for _, m := range sink.Messages() {
				if bytes.Contains(m.Data, []byte("8bit-refused")) && bytes.Contains(m.Data, []byte("Status: 5.6.3")) &&
					bytes.Contains(m.Data, []byte("does not offer 8BITMIME")) {
					return true
				}
			}
			return false
		})
		if n := plain.count(); n != 0 {
			t.Errorf("the hop without 8BITMIME got %d messages", n)
		}
	})

	t.Run("a 7-bit message still reaches the hop without 8BITMIME", func(t *testing.T) {
		c := greeted(t, addr)
		expect(t, "message", c.sendMessage("a@example.net", []string{"user@old.test"}, message("7bit")), "250 ")
		eventually(t, 10*time.Second, "delivery", func() bool { return plain.count() == 1 })
	})
}

// noEightBitHop is a minimal next hop that offers no 8BITMIME (go-smtp's server always
// does), counting the messages it takes.
type noEightBitHop struct {
	addr string
	n    atomic.Int32
}

func (h *noEightBitHop) count() int { return int(h.n.Load()) }

func startNoEightBitHop(t *testing.T) *noEightBitHop {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := &noEightBitHop{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go h.serve(c)
		}
	}()
	return h
}

// serve speaks just enough SMTP: EHLO without 8BITMIME, 250 to the envelope, the data read to
// its final dot.
func (h *noEightBitHop) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	say("220 old.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
		case "EHLO":
			say("250-old.test\r\n250 SIZE 10000000")
		case "DATA":
			say("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			h.n.Add(1)
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}
