package events

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// seqBlock is how many sequences are reserved on disk at a time: a restart skips at most this
// many, and the sequence file (which holds the first sequence not yet reserved) is written once
// per block instead of once per event.
const seqBlock = 1024

// freshSeq is where a publisher without a sequence file starts: the current time in
// microseconds. A node whose spool directory was wiped, or a replay against a NATS that keeps an
// earlier run's events, then still sends sequences above every one it sent before, and consumers
// that skip what they have seen do not skip its new events. It stays below 2^53 until the year
// 2255, so JSON tools that read numbers as doubles keep it exact.
func freshSeq() uint64 {
	return uint64(time.Now().UnixMicro())
}

func readSeq(path string) (uint64, error) {
	if path == "" {
		return 0, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("events: sequence file: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("events: sequence file %s: %q is not a number", path, b)
	}
	// The file holds the first unreserved sequence; the last one used is before it.
	if n > 0 {
		n--
	}
	return n, nil
}

// writeSeq replaces the sequence file atomically and durably.
func writeSeq(path string, next uint64) error {
	if path == "" {
		return nil
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d\n", next); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
