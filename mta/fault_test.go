package mta

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Fault rows: each breaks one thing the node depends on, then mends it, and says what was
// accepted, what was delivered and what was alerted. The long ones run with MTASTRESS_FAULTS=1
// (`just faults`). docs/reliability.md quotes their figures.

// faultsEnv turns the long rows on.
const faultsEnv = "MTASTRESS_FAULTS"

func longFaults(t *testing.T) {
	t.Helper()
	if os.Getenv(faultsEnv) == "" {
		t.Skipf("a long fault row: set %s=1 (just faults)", faultsEnv)
	}
}

// sendBatch sends n numbered messages (X-Mtastress-Id: <prefix>-<i>) over `clients`
// concurrent sessions and returns the ids that got a 250 and the replies that were not 250.
func sendBatch(t *testing.T, addr, prefix string, n, clients int) (
	accepted []string, refused map[string]int) {
	t.Helper()
	var mu sync.Mutex
	refused = map[string]int{}
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := greeted(t, addr)
			for i := range next {
				id := fmt.Sprintf("%s-%d", prefix, i)
				expect(t, "MAIL", c.cmd("MAIL FROM:<sender@example.net>"), "250 ")
				expect(t, "RCPT", c.cmd("RCPT TO:<user1@example.test>"), "250 ")
				expect(t, "DATA", c.cmd("DATA"), "354 ")
				c.conn.Write([]byte(message(id)))
				r := c.cmd(".")
				mu.Lock()
				if strings.HasPrefix(r, "250 ") {
					accepted = append(accepted, id)
				} else {
					refused[r[:min(len(r), 9)]]++
				}
				mu.Unlock()
			}
			c.cmd("QUIT")
			c.conn.Close()
		}()
	}
	wg.Wait()
	return accepted, refused
}

// deliveredOnce waits until every id in ids is at the sink, then fails if any is there twice
// or if the sink holds ids that were never accepted. It returns the number delivered.
func deliveredOnce(t *testing.T, sink interface {
	CountByHeader(string) map[string]int
}, ids []string, within time.Duration) int {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var counts map[string]int
	eventually(t, within, fmt.Sprintf("%d messages at the next hop", len(ids)), func() bool {
		counts = sink.CountByHeader("X-Mtastress-Id")
		for id := range want {
			if counts[id] == 0 {
				return false
			}
		}
		return true
	})
	for id, n := range counts {
		switch {
		case !want[id]:
			t.Errorf("%s reached the next hop but was never accepted", id)
		case n > 1:
			t.Errorf("%s reached the next hop %d times", id, n)
		}
	}
	return len(counts)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

func TestDiskFull(t *testing.T) {
	t.Run("a full disk gets 452 4.3.1 for new mail, and mail queued before it is delivered", func(t *testing.T) {
		sink := startSink(t)
		sink.SetTempFail(true) // the queue must hold mail when the disk fills
		cfg := testConfig(t, sink.Addr())
		s, addr := startServer(t, cfg)
		before, refused := sendBatch(t, addr, "before", 5, 2)
		if len(before) != 5 || len(refused) != 0 {
			t.Fatalf("before the disk filled: %d accepted, refused %v", len(before), refused)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)

		// The same spool, now on a disk with less free space than the node keeps in reserve.
		// MinFreeBytes stands in for a full disk, which this test must not make.
		full := cfg
		full.MinFreeBytes = 1 << 62
		s2, addr2 := startServer(t, full)
		during, refused := sendBatch(t, addr2, "during", 10, 2)
		if len(during) != 0 || refused["452 4.3.1"] != 10 {
			t.Fatalf("with the disk full: %d accepted, refused %v; want all 10 with 452 4.3.1", len(during), refused)
		}
		if got := metricValue(t, s2, "mtastress_mta_rejections_total", "code", "452"); got != 10 {
			t.Errorf("rejections counted with 452: %v, want 10", got)
		}
		sink.SetTempFail(false)
		n := deliveredOnce(t, sink, before, 10*time.Second)
		t.Logf("disk full: accepted %d before and 0 of 10 during (452 4.3.1); delivered %d, once each; "+
			"alerted: none (no alert service in this row)", len(before), n)
	})

	t.Run("once space is back the same spool takes mail again", func(t *testing.T) {
		sink := startSink(t)
		cfg := testConfig(t, sink.Addr())
		cfg.MinFreeBytes = 1 << 62
		s, addr := startServer(t, cfg)
		if got, refused := sendBatch(t, addr, "full", 3, 1); len(got) != 0 {
			t.Fatalf("accepted %d with the disk full (refused %v)", len(got), refused)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)

		cfg.MinFreeBytes = 0
		_, addr = startServer(t, cfg)
		after, refused := sendBatch(t, addr, "after", 5, 1)
		if len(after) != 5 {
			t.Fatalf("after space returned: %d accepted, refused %v", len(after), refused)
		}
		n := deliveredOnce(t, sink, after, 10*time.Second)
		t.Logf("disk full, then space back: accepted 0 of 3, then %d of 5; delivered %d, once each", len(after), n)
	})
}

func TestNextHopDownThenBack(t *testing.T) {
	t.Run("a next hop answering 4xx defers all, and once back each message arrives once", func(t *testing.T) {
		sink := startSink(t)
		sink.SetTempFail(true)
		s, addr := startServer(t, testConfig(t, sink.Addr()))
		ids, refused := sendBatch(t, addr, "hop4xx", 40, 4)
		if len(ids) != 40 {
			t.Fatalf("accepted %d of 40 while the next hop refused (refused %v)", len(ids), refused)
		}
		// Several rounds of retries against the refusing hop (RetryMin 50 ms, RetryMax 200 ms).
		eventually(t, 5*time.Second, "retries", func() bool {
			return metricValue(t, s, "mtastress_mta_deliveries_total", "outcome", "deferred") >= 80
		})
		if sink.Count() != 0 {
			t.Fatalf("the refusing next hop recorded %d messages", sink.Count())
		}
		sink.SetTempFail(false)
		n := deliveredOnce(t, sink, ids, 10*time.Second)
		snap := settled(t, s)
		deferred := metricValue(t, s, "mtastress_mta_deliveries_total", "outcome", "deferred")
		t.Logf("next hop 4xx then back: accepted %d, deferred %v times, delivered %d, once each, bounced %d",
			len(ids), deferred, n, snap.MessagesBounced)
	})

	t.Run("a next hop that refuses connections, then is reachable, gets each message once", func(t *testing.T) {
		sink := startSink(t)
		// Port 1 on loopback refuses the connection: the hop is down, not refusing mail.
		cfg := testConfig(t, "127.0.0.1:1")
		s, addr := startServer(t, cfg)
		ids, refused := sendBatch(t, addr, "hopdown", 20, 2)
		if len(ids) != 20 {
			t.Fatalf("accepted %d of 20 while the next hop was down (refused %v)", len(ids), refused)
		}
		eventually(t, 5*time.Second, "retries", func() bool {
			return metricValue(t, s, "mtastress_mta_deliveries_total", "outcome", "deferred") >= 40
		})
		// The hop comes back at a new address: an operator's reload points the node at it.
		cfg.Relay = sink.Addr()
		if err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		n := deliveredOnce(t, sink, ids, 10*time.Second)
		t.Logf("next hop unreachable then back: accepted %d, delivered %d, once each", len(ids), n)
	})
}

// The idle-connections row holds ten thousand connections against a node from a separate
// process (this test binary, re-executed into TestIdleConnectionsChild): one process may hold
// at most 20000 descriptors, and the node needs one per connection too.

const idleChildEnv = "MTASTRESS_IDLE_CHILD" // "<addr> <connections>"

func TestIdleConnectionsChild(t *testing.T) {
	arg := os.Getenv(idleChildEnv)
	if arg == "" {
		t.Skip("only runs as the child of TestIdleConnectionsMemory")
	}
	var addr string
	var n int
	if _, err := fmt.Sscanf(arg, "%s %d", &addr, &n); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	greeted, tempfailed, failed := 0, 0, 0
	var wg sync.WaitGroup
	work := make(chan struct{}, 256) // dials at once; the listen backlog is finite
	for range n {
		wg.Add(1)
		work <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-work }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			// A granted connection is greeted at once; a waiting one hears nothing yet.
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			line, _ := bufio.NewReader(c).ReadString('\n')
			mu.Lock()
			defer mu.Unlock()
			conns = append(conns, c)
			switch {
			case strings.HasPrefix(line, "220 "):
				greeted++
			case strings.HasPrefix(line, "421 "):
				tempfailed++
			}
		}()
	}
	wg.Wait()
	fmt.Printf("holding %d greeted %d tempfailed %d failed %d\n", len(conns), greeted, tempfailed, failed)
	// Hold them, silent, until the parent closes our stdin.
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.Close()
	}
}

func TestIdleConnectionsMemory(t *testing.T) {
	longFaults(t)
	const conns = 10000
	for _, c := range []struct {
		name  string
		limit int
	}{
		{"a T1000 node, so most connections wait or are refused", 1000},
		{"a node whose limit covers every connection, so each is a session", conns},
	} {
		name := fmt.Sprintf("ten thousand idle connections against %s keep memory bounded", c.name)
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, "127.0.0.1:1")
			cfg.Logger = nil
			cfg.Limit, cfg.ClientCap, cfg.SlotWait = c.limit, 2*conns, time.Minute
			s, addr := startServer(t, cfg)
			heap0, rss0 := memoryNow(t)

			child := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionsChild$", "-test.count=1")
			child.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", idleChildEnv, addr, conns))
			stdin, _ := child.StdinPipe()
			out, _ := child.StdoutPipe()
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { child.Process.Kill(); child.Wait() })
			var held, greetedN, tempfailed, failed int
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				if _, err := fmt.Sscanf(lines.Text(), "holding %d greeted %d tempfailed %d failed %d",
					&held, &greetedN, &tempfailed, &failed); err == nil {
					break
				}
			}
			snap := s.Snapshot()
			heap1, rss1 := memoryNow(t)
			perConn := float64(heap1-heap0) / float64(conns)
			t.Logf("%d connections: %d greeted, %d waiting, %d told 421, %d failed; active %d, waiting %d; "+
				"heap and stacks +%.1f MiB (%.1f KiB a connection), RSS +%.1f MiB",
				held, greetedN, snap.Waiting, tempfailed, failed, snap.Active, snap.Waiting,
				mib(heap1-heap0), perConn/1024, mib(rss1-rss0))
			if failed > 0 {
				t.Errorf("%d connections could not be made", failed)
			}
			if snap.Active > c.limit {
				t.Errorf("active %d over the limit %d", snap.Active, c.limit)
			}
			// The bound: a session costs go-smtp's buffers and a goroutine, a waiting
			// connection less. 64 KiB a connection would already be a leak.
			if perConn > 64<<10 {
				t.Errorf("heap grew %.1f KiB a connection", perConn/1024)
			}
			stdin.Close()
			child.Wait()
			eventually(t, 20*time.Second, "the node to let go of the connections", func() bool {
				snap := s.Snapshot()
				return snap.Active == 0 && snap.Waiting == 0
			})
			heap2, rss2 := memoryNow(t)
			t.Logf("after the client left: heap and stacks +%.1f MiB, RSS +%.1f MiB over the start, %d goroutines",
				mib(heap2-heap0), mib(rss2-rss0), runtime.NumGoroutine())
		})
	}
}

// memoryNow returns the bytes of live heap objects and goroutine stacks after a collection,
// and the process's resident set.
func memoryNow(t *testing.T) (live, rss int64) {
	t.Helper()
	// Twice: sync.Pool (io.Discard's buffers, which every lingering 421 borrows) keeps what it
	// holds across one collection.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return int64(ms.HeapAlloc + ms.StackInuse), rss
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestServerLeavesNothingBehind starts a server, runs a session and a delivery through it and
// shuts it down: no goroutine and no descriptor may outlive it.
func TestServerLeavesNothingBehind(t *testing.T) {
	sink := startSink(t)
	fds := openFDs(t)
	ignore := goleak.IgnoreCurrent()
	func() {
		s, err := New(testConfig(t, sink.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(l)
		ids, _ := sendBatch(t, l.Addr().String(), "leak", 5, 2)
		deliveredOnce(t, sink, ids, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	// The sink's side of the delivery connection closes once it reads the end.
	eventually(t, 5*time.Second, "descriptors back to the start", func() bool { return openFDs(t) <= fds })
	if err := goleak.Find(ignore); err != nil {
		t.Error(err)
	}
}
