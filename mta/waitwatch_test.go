package mta

import (
	"runtime"
	"testing"
	"time"
)

// TestWaiterThatHangsUpLeavesTheLine fills a node's one slot and its waiting line of one, then
// has the waiter hang up: its place must free at once, so the next client waits in the line
// instead of being answered 421 for a line full of a client already gone. A waiter that talks
// before its greeting keeps its place and its bytes.
func TestWaiterThatHangsUpLeavesTheLine(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("peerGone is not implemented on Windows")
	}
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.Limit, cfg.WaitMax, cfg.ClientCap, cfg.SlotWait = 1, 1, 10, 30*time.Second
	s, addr := startServer(t, cfg)
	holder := greeted(t, addr)

	gone := dialRaw(t, addr)
	eventually(t, 5*time.Second, "one waiting", func() bool { return s.Snapshot().Waiting == 1 })
	gone.conn.Close()
	eventually(t, 5*time.Second, "the line empty again", func() bool { return s.Snapshot().Waiting == 0 })
	if n := metricValue(t, s, "mtastress_mta_sessions_total", "outcome", "abandoned"); n != 1 {
		t.Fatalf("abandoned sessions %v, want 1", n)
	}

	// The next client takes the place, talks first, and is served with its bytes once the
	// holder leaves.
	talker := dialRaw(t, addr)
	eventually(t, 5*time.Second, "the talker waiting", func() bool { return s.Snapshot().Waiting == 1 })
	talker.send("EHLO early.test")
	time.Sleep(100 * time.Millisecond) // the watch sees bytes and leaves them
	if w := s.Snapshot().Waiting; w != 1 {
		t.Fatalf("%d waiting after the talker spoke, want 1", w)
	}
	expect(t, "the holder's QUIT", holder.cmd("QUIT"), "221 ")
	expect(t, "the talker's greeting", talker.reply(5*time.Second), "220 ")
	expect(t, "the talker's early EHLO", talker.reply(5*time.Second), "250 ")
}
