// Package linkio simulates a network link of limited throughput.
//
// It is our own small implementation of the API that MailHog-Server v1.0.1 imports from
// github.com/ian-kent/linkio, a module that the Go module proxy does not serve and that has
// no licence. MailHog uses it only for its "Jim" chaos monkey, which mtastress never enables,
// but the package must exist for MailHog to build. The throttling is real all the same: every
// reader and writer of one Link shares its throughput, as connections share a slow line.
package linkio

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Throughput is a rate in bits per second.
type Throughput float64

// Common throughputs.
const (
	BitPerSecond      Throughput = 1
	BytePerSecond                = 8 * BitPerSecond
	KilobitPerSecond             = 1000 * BitPerSecond
	KilobytePerSecond            = 1000 * BytePerSecond
	MegabitPerSecond             = 1000 * KilobitPerSecond
)

// String formats the throughput in bytes per second.
func (t Throughput) String() string {
	return fmt.Sprintf("%.0f B/s", float64(t/BytePerSecond))
}

// Link is a shared line: the bytes of all its readers and writers pass it one after another.
type Link struct {
	speed Throughput

	mu   sync.Mutex
	free time.Time // when the line has finished carrying the bytes already given to it
}

// NewLink returns a link that carries speed. A speed of zero or less means no limit.
func NewLink(speed Throughput) *Link {
	return &Link{speed: speed}
}

// NewLinkReader returns a reader whose reads are paced by the link.
func (l *Link) NewLinkReader(r io.Reader) io.Reader {
	return &linkReader{link: l, r: r}
}

// NewLinkWriter returns a writer whose writes are paced by the link.
func (l *Link) NewLinkWriter(w io.Writer) io.Writer {
	return &linkWriter{link: l, w: w}
}

// carry books n bytes on the line and sleeps until they have passed it.
func (l *Link) carry(n int) {
	if l.speed <= 0 || n <= 0 {
		return
	}
	cost := time.Duration(float64(n) * 8 / float64(l.speed) * float64(time.Second))

	l.mu.Lock()
	now := time.Now()
	if l.free.Before(now) {
		l.free = now
	}
	l.free = l.free.Add(cost)
	done := l.free
	l.mu.Unlock()

	time.Sleep(time.Until(done))
}

type linkReader struct {
	link *Link
	r    io.Reader
}

func (lr *linkReader) Read(p []byte) (int, error) {
	n, err := lr.r.Read(p)
	lr.link.carry(n)
	return n, err
}

type linkWriter struct {
	link *Link
	w    io.Writer
}

func (lw *linkWriter) Write(p []byte) (int, error) {
	lw.link.carry(len(p))
	return lw.w.Write(p)
}
