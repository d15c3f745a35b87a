package mta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Recovery at start: every segment is read record by record; messages with recipients not yet
// finished go back to delivery. The first record that does not check out, and everything after
// it in that segment, is set aside: it can only be the tail of an append that a crash cut short,
// whose session never heard 250 (the fsync had not returned).

// recover loads the queue. An I/O error is fatal: starting without part of the queue would
// lose mail silently.
func (sp *spool) recover() ([]*queued, error) {
	entries, err := os.ReadDir(sp.queueDir)
	if err != nil {
		return nil, fmt.Errorf("mta: spool: %w", err)
	}
	var nums []uint64
	logs := map[uint64]bool{}
	for _, e := range entries {
		base, ext, _ := strings.Cut(e.Name(), ".")
		num, perr := strconv.ParseUint(base, 10, 64)
		switch {
		case perr != nil || (ext != "log" && ext != "done"):
			sp.log.Warn("unknown file in spool left alone", "file", e.Name())
		case ext == "log":
			nums = append(nums, num)
			logs[num] = true
		}
	}
	sp.removeOrphanMarks(entries, logs)
	slices.Sort(nums)

	var out []*queued
	for _, num := range nums {
		sp.nextSeg = max(sp.nextSeg, num+1)
		seg, msgs, err := sp.recoverSegment(num)
		if err != nil {
			return nil, err
		}
		sp.segs[num] = seg
		if seg.live == 0 {
			sp.removeLocked(seg)
			continue
		}
		out = append(out, msgs...)
	}
	if len(out) > 0 {
		sp.log.Info("spool recovered", "messages", len(out), "segments", len(sp.segs))
	}
	return out, nil
}

func (sp *spool) removeOrphanMarks(entries []os.DirEntry, logs map[uint64]bool) {
	for _, e := range entries {
		base, ext, _ := strings.Cut(e.Name(), ".")
		num, err := strconv.ParseUint(base, 10, 64)
		if err == nil && ext == "done" && !logs[num] {
			_ = os.Remove(filepath.Join(sp.queueDir, e.Name()))
		}
	}
}

func (sp *spool) recoverSegment(num uint64) (*segment, []*queued, error) {
	seg := &segment{num: num}
	f, err := os.OpenFile(sp.segPath(num, ".log"), os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("mta: spool: %w", err)
	}
	done, err := readMarks(sp.segPath(num, ".done"))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	marks, err := os.OpenFile(sp.segPath(num, ".done"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("mta: spool: %w", err)
	}
	seg.f, seg.marks = f, marks

	msgs, end, why := scanSegment(f, seg, done)
	if why != nil {
		if err := sp.setAside(seg, end, why); err != nil {
			return nil, nil, err
		}
	}
	seg.size = end
	// New mail never goes into a recovered segment: it is sealed.
	seg.sealed = true
	for _, q := range msgs {
		seg.live++
		sp.live++
		sp.bytes += q.size
	}
	return seg, msgs, nil
}

// scanSegment reads records until the end or the first bad one. It returns the live messages,
// the offset where good records end, and why reading stopped early (nil at a clean end).
func scanSegment(f *os.File, seg *segment, done map[string]map[int]bool) ([]*queued, int64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 256<<10)
	var msgs []*queued
	var off int64
	for {
		var head [recordHeadLen]byte
		n, err := io.ReadFull(r, head[:])
		if n == 0 && errors.Is(err, io.EOF) {
			return msgs, off, nil
		}
		if err != nil {
			return msgs, off, fmt.Errorf("record header cut short after %d bytes", n)
		}
		q, err := readRecord(r, head, off)
		if err != nil {
			return msgs, off, err
		}
		q.seg = seg
		for i := range q.done {
			q.done[i] = done[q.env.ID][i]
		}
		if slices.Contains(q.done, false) {
			msgs = append(msgs, q)
		}
		off += q.size
	}
}

// readRecord reads and checks the payload of the record whose header is head, at off.
func readRecord(r io.Reader, head [recordHeadLen]byte, off int64) (*queued, error) {
	if string(head[:4]) != recordMagic {
		return nil, fmt.Errorf("no record magic at offset %d", off)
	}
	plen := binary.BigEndian.Uint32(head[4:8])
	if plen > maxRecordBytes {
		return nil, fmt.Errorf("record length %d is implausible", plen)
	}
	payload := make([]byte, plen)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("record of %d bytes cut short", plen)
	}
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(head[8:]) {
		return nil, errors.New("record checksum mismatch")
	}
	meta, _, ok := bytes.Cut(payload, []byte{'\n'})
	var env envelope
	if !ok || json.Unmarshal(meta, &env) != nil || env.ID == "" || len(env.To) == 0 {
		return nil, errors.New("record envelope unreadable")
	}
	return &queued{
		env:  env,
		off:  off + recordHeadLen + int64(len(meta)) + 1,
		n:    int64(plen) - int64(len(meta)) - 1,
		size: recordHeadLen + int64(plen),
		done: make([]bool, len(env.To)),
	}, nil
}

// readMarks reads a .done file; a last line without its newline (cut by a crash) is ignored.
func readMarks(path string) (map[string]map[int]bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mta: spool: %w", err)
	}
	done := map[string]map[int]bool{}
	for len(b) > 0 {
		line, rest, complete := bytes.Cut(b, []byte{'\n'})
		b = rest
		if !complete {
			break
		}
		id, idx, ok := strings.Cut(string(line), " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil {
			continue
		}
		if done[id] == nil {
			done[id] = map[int]bool{}
		}
		done[id][i] = true
	}
	return done, nil
}

// setAside copies a segment's bad tail to the corrupt directory and cuts it off, so it is
// neither delivered nor found again at the next start.
func (sp *spool) setAside(seg *segment, off int64, why error) error {
	st, err := seg.f.Stat()
	if err != nil {
		return fmt.Errorf("mta: spool: %w", err)
	}
	dst := filepath.Join(sp.corruptDir, fmt.Sprintf("%s.%d.%d.torn", seg.name(), off, time.Now().UnixNano()))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("mta: spool: setting aside a torn record: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(seg.f, off, st.Size()-off))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(sp.corruptDir)
	}
	if err == nil {
		err = seg.f.Truncate(off)
	}
	if err == nil {
		err = seg.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("mta: spool: setting aside a torn record: %w", err)
	}
	sp.log.Error("torn spool record set aside, not delivered", "segment", seg.name(), "offset", off,
		"bytes", st.Size()-off, "reason", why.Error(), "saved_as", dst)
	return nil
}
