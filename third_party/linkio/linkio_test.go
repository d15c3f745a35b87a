package linkio

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func TestLinkThrottlesSharedBytes(t *testing.T) {
	// 2000 B/s: 400 bytes split over a reader and a writer must take about 200 ms.
	l := NewLink(2000 * BytePerSecond)
	start := time.Now()
	var out bytes.Buffer
	w := l.NewLinkWriter(&out)
	if _, err := w.Write(make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	r := l.NewLinkReader(bytes.NewReader(make([]byte, 200)))
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < 180*time.Millisecond {
		t.Fatalf("400 bytes at 2000 B/s took %v, want at least 180ms", got)
	}
	if out.Len() != 200 {
		t.Fatalf("writer passed %d bytes, want 200", out.Len())
	}
}

func TestZeroSpeedIsUnlimited(t *testing.T) {
	l := NewLink(0)
	start := time.Now()
	if _, err := l.NewLinkWriter(io.Discard).Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got > time.Second {
		t.Fatalf("unlimited link took %v", got)
	}
}
