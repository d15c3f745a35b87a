package mta

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkIngest compares the rate of one-message sessions that mtastress accepts, every 250
// on disk first, with a bare go-smtp server that discards what it is sent, in the same run.
// The sub-benchmarks report each rate; the ratio (the bar is 0.6) comes from rounds that
// alternate between the two, so that a change in the machine's load hits both alike:
//
//	go test ./mta/ -run '^$' -bench Ingest -benchtime 2000x
func BenchmarkIngest(b *testing.B) {
	const clients = 20
	discard := startDiscard(b)
	cfg := benchConfig(b)
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	defer s.Close()
	mta := l.Addr().String()

	b.Run("discard", func(b *testing.B) {
		b.ReportMetric(float64(b.N)/ingest(b, discard, clients, b.N).Seconds(), "msgs/s")
	})
	b.Run("mtastress", func(b *testing.B) {
		b.ReportMetric(float64(b.N)/ingest(b, mta, clients, b.N).Seconds(), "msgs/s")
	})
	b.Run("ratio", func(b *testing.B) {
		// b.N sessions to each server, in rounds of per.
		const per = 250
		var td, tm time.Duration
		rounds := max(b.N/per, 1)
		for range rounds {
			td += ingest(b, discard, clients, per)
			tm += ingest(b, mta, clients, per)
		}
		n := float64(rounds * per)
		ratio := td.Seconds() / tm.Seconds()
		b.ReportMetric(ratio, "ratio")
		b.Logf("%d clients, %d alternating rounds: discard %.0f msgs/s, mtastress %.0f msgs/s, ratio %.2f",
			clients, rounds, n/td.Seconds(), n/tm.Seconds(), ratio)
	})
}

func benchConfig(b *testing.B) Config {
	cfg := DefaultConfig()
	cfg.Node, cfg.Cluster, cfg.Model, cfg.Limit = "bench", "bench", "T100", 100
	cfg.Hostname = "mx.example.test"
	cfg.Domains = []string{"example.test"}
	// The next hop accepts connections and never greets: the delivery workers wait on it and
	// the messages stay queued, so the run measures ingest, not relaying.
	hole, _ := net.Listen("tcp", "127.0.0.1:0")
	b.Cleanup(func() { hole.Close() })
	cfg.Relay = hole.Addr().String()
	cfg.DeliveryTimeout = time.Hour
	cfg.SpoolDir = b.TempDir() // on the real disk: /tmp is not tmpfs here
	cfg.ClientCap = 100
	return cfg
}

// ingest sends n one-message sessions from c concurrent clients and returns how long it took.
func ingest(b *testing.B, addr string, c, n int) time.Duration {
	body := []byte(message("bench") + "This is a small message body of a few hundred bytes, like most mail.\r\n")
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := sendOne(addr, body); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d sessions failed", f, n)
	}
	return el
}

func sendOne(addr string, body []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt("user1@example.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// startDiscard runs a bare go-smtp server that reads each message and drops it.
func startDiscard(b *testing.B) string {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }))
	srv.Domain = "discard.test"
	srv.ErrorLog = nopLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

type discardSession struct{}

func (discardSession) Reset()                               {}
func (discardSession) Logout() error                        { return nil }
func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
