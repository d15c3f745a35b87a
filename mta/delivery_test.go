package mta

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spoolHolds reports whether some segment file under dir contains b.
func spoolHolds(t *testing.T, dir string, b string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "queue", "*.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil && bytes.Contains(data, []byte(b)) {
			return true
		}
	}
	return false
}

func TestDelivery(t *testing.T) {
	t.Run("an accepted message is on disk at the 250, and after 4xx from the sink arrives once", func(t *testing.T) {
		sink := startSink(t)
		sink.SetTempFail(true)
		cfg := testConfig(t, sink.Addr())
		s, addr := startServer(t, cfg)

		c := greeted(t, addr)
		expect(t, "final dot", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("m-1")), "250 2.0.0 ")
		if !spoolHolds(t, cfg.SpoolDir, "X-Mtastress-Id: m-1") {
			t.Fatal("the message is not in the spool at the 250")
		}
		eventually(t, 3*time.Second, "a deferral", func() bool {
			return metricValue(t, s, "mtastress_mta_deliveries_total", "outcome", "deferred") > 0
		})

		sink.SetTempFail(false)
		eventually(t, 5*time.Second, "delivery", func() bool { return s.Snapshot().QueueDepth == 0 })
		if n := headerCount(sink, "X-Mtastress-Id: m-1"); n != 1 {
			t.Fatalf("the sink has %d copies, want 1", n)
		}
		m := sink.Messages()[0]
		if m.From != "sender@example.net" || len(m.To) != 1 || m.To[0] != "user1@example.test" {
			t.Fatalf("envelope at the sink: %q → %q", m.From, m.To)
		}
		if !bytes.HasPrefix(m.Data, []byte("Received: from client.test ([127.0.0.1])\r\n\tby mx.example.test")) {
			t.Fatalf("the message does not start with our Received header:\n%s", m.Data)
		}
		if snap := s.Snapshot(); snap.MessagesAccepted != 1 || snap.MessagesDelivered != 1 {
			t.Fatalf("snapshot %+v, want 1 accepted, 1 delivered", snap)
		}
	})

	t.Run("a 5xx from the next hop bounces to the sender, and mail from <> is not bounced", func(t *testing.T) {
		sink := startPolicySink(t)
		cfg := testConfig(t, sink.Addr())
		cfg.RelayNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		s, addr := startServer(t, cfg)
		c := greeted(t, addr)
		expect(t, "message", c.sendMessage("sender@example.net", []string{"reject1@elsewhere.example", "ok@elsewhere.example"}, message("m-2")), "250 ")
		expect(t, "bounce", c.sendMessage("", []string{"reject2@elsewhere.example"}, message("m-3")), "250 ")
		eventually(t, 5*time.Second, "delivery and the bounce", func() bool {
			return s.Snapshot().QueueDepth == 0 && len(sink.Messages()) == 2
		})
		var dsn *sinkMsg
		for _, m := range sink.Messages() {
			if m.From == "" {
				dsn = &m
			}
		}
		if dsn == nil || len(dsn.To) != 1 || dsn.To[0] != "sender@example.net" {
			t.Fatalf("no bounce to the sender from <>: %+v", sink.Messages())
		}
		for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; reject1@elsewhere.example",
			"Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 no such user", "X-Mtastress-Id: m-2"} {
			if !bytes.Contains(dsn.Data, []byte(want)) {
				t.Errorf("the bounce lacks %q:\n%s", want, dsn.Data)
			}
		}
		if bytes.Contains(dsn.Data, []byte("ok@elsewhere.example")) && bytes.Contains(dsn.Data, []byte("Final-Recipient: rfc822; ok@")) {
			t.Errorf("the delivered recipient is in the bounce")
		}
		if snap := s.Snapshot(); snap.MessagesBounced != 2 {
			t.Errorf("bounced %d, want 2 (the message and the one from <>)", snap.MessagesBounced)
		}
	})

	t.Run("a recipient given twice gets one copy", func(t *testing.T) {
		sink := startSink(t)
		s, addr := startServer(t, testConfig(t, sink.Addr()))
		c := greeted(t, addr)
		expect(t, "message", c.sendMessage("sender@example.net", []string{"user1@example.test", "user1@EXAMPLE.test"}, message("d-1")), "250 ")
		eventually(t, 3*time.Second, "delivery", func() bool { return s.Snapshot().MessagesDelivered == 1 })
		if to := sink.Messages()[0].To; len(to) != 1 {
			t.Fatalf("the sink got recipients %q, want one", to)
		}
	})

	t.Run("a message still deferred at give-up is bounced with status 4.4.7", func(t *testing.T) {
		deferring, senders := startSink(t), startSink(t)
		deferring.SetTempFail(true)
		cfg := testConfig(t, deferring.Addr())
		cfg.Transports = map[string]string{"example.net": senders.Addr()}
		cfg.GiveUp = 300 * time.Millisecond
		_, addr := startServer(t, cfg)
		c := greeted(t, addr)
		expect(t, "message", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("m-4")), "250 ")
		eventually(t, 5*time.Second, "the bounce", func() bool { return len(senders.Messages()) == 1 })
		if d := senders.Messages()[0].Data; !bytes.Contains(d, []byte("Status: 4.4.7")) {
			t.Fatalf("the bounce lacks Status 4.4.7:\n%s", d)
		}
	})
}

func TestRestart(t *testing.T) {
	t.Run("mail queued at a stop is delivered after the restart", func(t *testing.T) {
		down, _ := net.Listen("tcp", "127.0.0.1:0")
		deadRelay := down.Addr().String()
		down.Close()
		cfg := testConfig(t, deadRelay)
		s1, addr := startServerNoCleanup(t, cfg)
		c := greeted(t, addr)
		expect(t, "message", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("m-5")), "250 ")
		s1.Close()

		sink := startSink(t)
		cfg.Relay = sink.Addr()
		s2, _ := startServer(t, cfg)
		eventually(t, 5*time.Second, "the recovered message at the sink", func() bool { return headerCount(sink, "X-Mtastress-Id: m-5") == 1 })
		eventually(t, 2*time.Second, "an empty queue", func() bool { return s2.Snapshot().QueueDepth == 0 })
	})

	t.Run("a torn spool record is set aside at start and the good ones delivered", func(t *testing.T) {
		down, _ := net.Listen("tcp", "127.0.0.1:0")
		deadRelay := down.Addr().String()
		down.Close()
		cfg := testConfig(t, deadRelay)
		s1, addr := startServerNoCleanup(t, cfg)
		c := greeted(t, addr)
		expect(t, "message", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("m-6")), "250 ")
		s1.Close()

		// A crash in the middle of an append: a record header promising more than is there.
		segs, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "queue", "*.log"))
		if len(segs) != 1 {
			t.Fatalf("segments %v, want 1", segs)
		}
		f, _ := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
		f.Write([]byte("MTQ1\x00\x00\x10\x00\x00\x00\x00\x00{\"id\":\"torn\",\"to\":[\"user1@example.test\"]}\nX-Mtastress-Id: torn"))
		f.Close()
		// And a segment that is garbage from its first byte.
		os.WriteFile(filepath.Join(cfg.SpoolDir, "queue", "0000000000000009.log"), []byte("garbage"), 0o600)

		sink := startSink(t)
		cfg.Relay = sink.Addr()
		s2, _ := startServer(t, cfg)
		eventually(t, 5*time.Second, "the good message", func() bool { return headerCount(sink, "X-Mtastress-Id: m-6") == 1 })
		eventually(t, 2*time.Second, "an empty queue", func() bool { return s2.Snapshot().QueueDepth == 0 })
		if n := headerCount(sink, "X-Mtastress-Id: torn"); n != 0 {
			t.Fatalf("the torn record was delivered %d times", n)
		}
		aside, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "corrupt", "*.torn"))
		if len(aside) != 2 {
			t.Fatalf("set aside %v, want the torn tail and the garbage segment", aside)
		}
		if b, _ := os.ReadFile(aside[0]); !strings.HasPrefix(string(b), "MTQ1") && !strings.HasPrefix(string(b), "garbage") {
			t.Fatalf("set-aside file holds %q", b)
		}
	})
}

// startServerNoCleanup starts a Server the test stops itself.
func startServerNoCleanup(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	return s, l.Addr().String()
}

func TestDeliveryReusesConnections(t *testing.T) {
	sink := startPolicySink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.DeliveryWorkers = 1
	s, addr := startServer(t, cfg)
	c := greeted(t, addr)
	for i := range 3 {
		expect(t, "message", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message(fmt.Sprint("r-", i))), "250 ")
		eventually(t, 3*time.Second, "delivery", func() bool { return s.Snapshot().MessagesDelivered == uint64(i+1) })
	}
	sink.mu.Lock()
	n := sink.sessions
	sink.mu.Unlock()
	if n != 1 {
		t.Fatalf("the sink saw %d connections for 3 messages, want 1", n)
	}
}

func TestSpoolLimits(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.SpoolMaxBytes = 600
	_, addr := startServer(t, cfg)
	c := greeted(t, addr)
	expect(t, "first message", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("s-1")), "250 ")
	expect(t, "over the spool cap", c.sendMessage("sender@example.net", []string{"user1@example.test"}, message("s-2")), "451 4.3.0 ")
}
