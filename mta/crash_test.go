package mta

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash test runs the MTA as a separate process (this test binary, re-executed into
// TestCrashChild), sends numbered messages, kills it with SIGKILL at random moments, restarts
// it on the same spool, and checks that every message that got a 250 reaches the sink.
// MTASTRESS_LONG=1 runs many more rounds.

const crashChildEnv = "MTASTRESS_CRASH_CHILD" // "<spool dir>|<relay>"

func TestCrashChild(t *testing.T) {
	arg := os.Getenv(crashChildEnv)
	if arg == "" {
		t.Skip("only runs as the child of TestCrashKeepsEveryAcceptedMessage")
	}
	var spoolDir, relay string
	for i := 0; i < len(arg); i++ {
		if arg[i] == '|' {
			spoolDir, relay = arg[:i], arg[i+1:]
		}
	}
	cfg := DefaultConfig()
	cfg.Node, cfg.Cluster, cfg.Model, cfg.Limit = "crash", "test", "T50", 50
	cfg.Domains, cfg.Relay, cfg.SpoolDir, cfg.ClientCap = []string{"example.test"}, relay, spoolDir, 100
	cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	s, err := New(cfg)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("listening", l.Addr())
	s.Serve(l) // until SIGKILL
}

func TestCrashKeepsEveryAcceptedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	rounds := 3
	if os.Getenv("MTASTRESS_LONG") != "" {
		rounds = 25
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0))
	sink := startSink(t)
	spoolDir := t.TempDir()

	var mu sync.Mutex
	acked := map[int]bool{}
	var next atomic.Int64
	for round := 0; round < rounds; round++ {
		child, addr := startChild(t, spoolDir, sink.Addr())
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n := int(next.Add(1))
					if err := sendNumbered(addr, n); err != nil {
						return // the child is gone
					}
					mu.Lock()
					acked[n] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond) // the random moment of the crash
		child.Process.Kill()
		child.Wait()
		wg.Wait()
	}

	// A last start delivers what the crashes left in the spool.
	startChild(t, spoolDir, sink.Addr())
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want == 0 {
		t.Fatal("no message was accepted")
	}
	seen := func() (map[int]int, int) {
		counts := map[int]int{}
		for _, m := range sink.Messages() {
			if n, ok := crashID(m.Data); ok {
				counts[n]++
			}
		}
		missing := 0
		for n := range acked {
			if counts[n] == 0 {
				missing++
			}
		}
		return counts, missing
	}
	eventually(t, 20*time.Second, "every accepted message at the sink", func() bool { _, m := seen(); return m == 0 })
	counts, _ := seen()
	dups := 0
	for _, c := range counts {
		dups += c - 1
	}
	t.Logf("%d messages accepted over %d crashes, all delivered; %d duplicates (allowed after a crash)", want, rounds, dups)
}

// startChild starts the MTA process and returns it with its address.
func startChild(t *testing.T, spoolDir, relay string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+spoolDir+"|"+relay)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		var addr string
		if _, err := fmt.Sscanf(lines.Text(), "listening %s", &addr); err == nil {
			go func() {
				for lines.Scan() {
				}
			}()
			return cmd, addr
		}
	}
	t.Fatal("the child did not start")
	return nil, ""
}

func sendNumbered(addr string, n int) error {
	body := []byte(fmt.Sprintf("From: <s@example.net>\r\nSubject: %d\r\nX-Mtastress-Id: crash-%d\r\n\r\nbody\r\n", n, n))
	return sendOne(addr, body)
}

// crashID finds the number in a message's X-Mtastress-Id: crash-N header.
func crashID(data []byte) (int, bool) {
	const key = "X-Mtastress-Id: crash-"
	for i := 0; i+len(key) < len(data); i++ {
		if string(data[i:i+len(key)]) == key {
			j := i + len(key)
			k := j
			for k < len(data) && data[k] >= '0' && data[k] <= '9' {
				k++
			}
			n, err := strconv.Atoi(string(data[j:k]))
			return n, err == nil
		}
	}
	return 0, false
}
