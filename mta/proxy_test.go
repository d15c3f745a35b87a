package mta

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// proxyV2 builds a version 2 header: command 1 (PROXY) or 0 (LOCAL), TCP over the family of
// src, and extra bytes (TLVs) after the addresses.
func proxyV2(cmd byte, src, dst netip.AddrPort, extra []byte) []byte {
	var b bytes.Buffer
	b.Write(proxyV2Sig)
	b.WriteByte(0x20 | cmd)
	var addrs []byte
	fam := byte(0x11)
	if src.Addr().Is6() {
		fam = 0x21
	}
	addrs = append(addrs, src.Addr().AsSlice()...)
	addrs = append(addrs, dst.Addr().AsSlice()...)
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, dst.Port())
	addrs = append(addrs, extra...)
	b.WriteByte(fam)
	_ = binary.Write(&b, binary.BigEndian, uint16(len(addrs)))
	b.Write(addrs)
	return b.Bytes()
}

func TestReadProxyHeader(t *testing.T) {
	v4src, v4dst := netip.MustParseAddrPort("203.0.113.7:40000"), netip.MustParseAddrPort("192.0.2.1:25")
	v6src, v6dst := netip.MustParseAddrPort("[2001:db8::7]:40000"), netip.MustParseAddrPort("[2001:db8::1]:25")
	local := proxyV2(0, v4src, v4dst, nil)
	unspec := append(append([]byte{}, proxyV2Sig...), 0x21, 0x00, 0, 0)
	udp := proxyV2(1, v4src, v4dst, nil)
	udp[13] = 0x12
	badVersion := proxyV2(1, v4src, v4dst, nil)
	badVersion[12] = 0x11
	short := proxyV2(1, v4src, v4dst, nil)
	short[15] = 4 // says 4 bytes of addresses, TCP4 needs 12
	tests := []struct {
		name, in string
		want     proxyHeader
		err      string // "" when it must parse
		rest     string // what must be left for the SMTP session
	}{
		{name: "v1 TCP4", in: "PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\nEHLO x\r\n",
			want: proxyHeader{src: v4src, dst: v4dst}, rest: "EHLO x\r\n"},
		{name: "v1 TCP6", in: "PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n",
			want: proxyHeader{src: v6src, dst: v6dst}},
		{name: "v1 UNKNOWN keeps the connection's address", in: "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", want: proxyHeader{local: true}},
		{name: "v1 without CRLF", in: "PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\n", err: "CRLF"},
		{name: "v1 IPv6 address in TCP4", in: "PROXY TCP4 2001:db8::7 192.0.2.1 40000 25\r\n", err: "does not fit"},
		{name: "v1 port out of range", in: "PROXY TCP4 203.0.113.7 192.0.2.1 70000 25\r\n", err: "port"},
		{name: "v1 port with a leading zero", in: "PROXY TCP4 203.0.113.7 192.0.2.1 040000 25\r\n", err: "port"},
		{name: "v1 double space", in: "PROXY TCP4  203.0.113.7 192.0.2.1 40000 25\r\n", err: "is not PROXY"},
		{name: "v1 line too long", in: "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", err: "over 107"},
		{name: "v2 TCP4 with a TLV skipped", in: string(proxyV2(1, v4src, v4dst, []byte{0x04, 0, 1, 'x'})) + "EHLO x\r\n",
			want: proxyHeader{src: v4src, dst: v4dst}, rest: "EHLO x\r\n"},
		{name: "v2 TCP6", in: string(proxyV2(1, v6src, v6dst, nil)), want: proxyHeader{src: v6src, dst: v6dst}},
		{name: "v2 LOCAL keeps the connection's address", in: string(local), want: proxyHeader{local: true}},
		{name: "v2 UNSPEC keeps the connection's address", in: string(unspec), want: proxyHeader{local: true}},
		{name: "v2 UDP is refused", in: string(udp), err: "not TCP"},
		{name: "v2 version 1 in the version nibble", in: string(badVersion), err: "version"},
		{name: "v2 addresses shorter than the family needs", in: string(short), err: "want 12"},
		{name: "plain SMTP", in: "EHLO client.example\r\n", err: "no PROXY"},
		{name: "nothing at all", in: "", err: "no PROXY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tc.in), proxyBufSize)
			got, err := readProxyHeader(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			var rest bytes.Buffer
			rest.ReadFrom(r)
			if rest.String() != tc.rest {
				t.Errorf("left %q for the session, want %q", rest.String(), tc.rest)
			}
		})
	}
}

func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(1, netip.MustParseAddrPort("203.0.113.7:1"), netip.MustParseAddrPort("192.0.2.1:25"), []byte{1, 0, 0}))
	f.Add(proxyV2(0, netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[2001:db8::1]:25"), nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), proxyBufSize)
		h, err := readProxyHeader(r)
		if err != nil {
			return
		}
		// A header that parses names a client, or says to keep the connection's address, and
		// never consumes more than it was given.
		if !h.local && !h.src.IsValid() {
			t.Fatalf("parsed %+v without a client address", h)
		}
		if r.Buffered() > len(in) {
			t.Fatalf("buffered %d of %d bytes", r.Buffered(), len(in))
		}
	})
}

// startProxyServer serves cfg on a PROXY listener on 127.0.0.1:0.
func startProxyServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeProxy(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeProxy returned %v, want ErrServerClosed", err)
		}
	})
	return s, l.Addr().String()
}

// closedWithoutReply reports whether the server closes c without a greeting.
func closedWithoutReply(c *rawClient) bool {
	return c.reply(8*time.Second) == ""
}

func TestProxyProtocol(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.RelayNetworks = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	cfg.ClientCap = 1
	s, addr := startProxyServer(t, cfg)
	balancer := netip.MustParseAddr("127.0.0.1")

	t.Run("v1 from the balancer: the client's address relays and is in Received", func(t *testing.T) {
		c := dialRawFrom(t, addr, balancer)
		c.send("PROXY TCP4 198.51.100.9 192.0.2.1 40000 25")
		expect(t, "greeting", c.reply(5*time.Second), "220 ")
		expect(t, "EHLO", c.cmd("EHLO client.test"), "250 ")
		// relay_networks holds the proxied client, not the balancer.
		expect(t, "relay", c.sendMessage("a@example.net", []string{"x@elsewhere.test"}, message("proxy-v1")), "250 ")
		eventually(t, 10*time.Second, "delivery", func() bool { return headerCount(sink, "X-Mtastress-Id: proxy-v1") == 1 })
		for _, m := range sink.Messages() {
			if bytes.Contains(m.Data, []byte("proxy-v1")) && !bytes.Contains(m.Data, []byte("[198.51.100.9]")) {
				t.Errorf("Received header without the proxied client:\n%s", m.Data)
			}
		}
	})

	t.Run("v2 from the balancer: a client outside relay_networks may not relay", func(t *testing.T) {
		c := dialRawFrom(t, addr, balancer)
		hdr := proxyV2(1, netip.MustParseAddrPort("203.0.113.7:40000"), netip.MustParseAddrPort("192.0.2.1:25"), nil)
		c.conn.Write(hdr)
		expect(t, "greeting", c.reply(5*time.Second), "220 ")
		expect(t, "EHLO", c.cmd("EHLO client.test"), "250 ")
		expect(t, "MAIL", c.cmd("MAIL FROM:<a@example.net>"), "250 ")
		expect(t, "RCPT", c.cmd("RCPT TO:<x@elsewhere.test>"), "554 5.7.1")
	})

	t.Run("the per-client cap counts proxied clients, not the balancer", func(t *testing.T) {
		a := dialRawFrom(t, addr, balancer)
		a.send("PROXY TCP4 203.0.113.20 192.0.2.1 40000 25")
		expect(t, "first client", a.reply(5*time.Second), "220 ")
		b := dialRawFrom(t, addr, balancer)
		b.send("PROXY TCP4 203.0.113.21 192.0.2.1 40000 25")
		expect(t, "second client, another address", b.reply(5*time.Second), "220 ")
		c := dialRawFrom(t, addr, balancer)
		c.send("PROXY TCP4 203.0.113.20 192.0.2.1 40001 25")
		expect(t, "the first client again, over its cap of 1", c.reply(5*time.Second), "421 4.7.0")
	})

	t.Run("a PROXY header from outside proxy_from is refused", func(t *testing.T) {
		c := dialRawFrom(t, addr, netip.MustParseAddr("127.0.0.2"))
		c.send("PROXY TCP4 198.51.100.9 192.0.2.1 40000 25")
		if !closedWithoutReply(c) {
			t.Fatal("a stranger's PROXY header was served")
		}
	})

	t.Run("a balancer connection without the header is refused", func(t *testing.T) {
		before := s.Snapshot().SessionsRejected
		c := dialRawFrom(t, addr, balancer)
		c.send("EHLO client.test")
		if !closedWithoutReply(c) {
			t.Fatal("a connection without a PROXY header was served")
		}
		eventually(t, 5*time.Second, "the refusal to be counted", func() bool { return s.Snapshot().SessionsRejected > before })
	})
}

func TestProxyProtocolDaemon(t *testing.T) {
	sink := startSink(t)
	dir := t.TempDir()
	d := startDaemon(t, daemonFile(t, dir, sink.Addr(), "listen_proxy: 127.0.0.1:0\nproxy_from: [127.0.0.1]\ndomains: [example.test]\n"))
	c := dialRawFrom(t, d.proxy[0].Addr().String(), netip.MustParseAddr("127.0.0.1"))
	c.send("PROXY TCP6 2001:db8::9 2001:db8::1 40000 25")
	expect(t, "greeting", c.reply(5*time.Second), "220 ")
	expect(t, "EHLO", c.cmd("EHLO client.test"), "250 ")
	expect(t, "message", c.sendMessage("a@example.net", []string{"user1@example.test"}, message("proxy-d")), "250 ")
	eventually(t, 10*time.Second, "delivery", func() bool { return headerCount(sink, "X-Mtastress-Id: proxy-d") == 1 })

	_, err := ParseConfigFile("mta.yaml", []byte(baseConfig+"listen_proxy: 127.0.0.1:2525\n"))
	var fe *FileError
	if !errors.As(err, &fe) || fe.Key != "listen_proxy" {
		t.Fatalf("listen_proxy without proxy_from: %v", err)
	}
}
