package mta

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The spool is a log of segment files with group commit. Sessions hand their messages to one
// committer goroutine; it appends every message waiting at that moment to the active segment
// and makes them durable with one fsync, then each session answers 250. Measured on these
// machines, one shared fsync keeps about 0.77 of a discarding server's rate where a file per
// message (fsync, rename, directory fsync) keeps 0.4.
//
// Layout under <spool>/queue: NNNNNNNNNNNNNNNN.log holds records; NNNNNNNNNNNNNNNN.done holds
// one line "<queue id> <recipient index>" per recipient finished (delivered or bounced). A
// segment is deleted once every message in it is finished and it is no longer active.
//
// A record is: magic "MTQ1", payload length (uint32, big endian), CRC-32C of the payload, then
// the payload: the envelope as one JSON line, then the message. A record that does not check
// out at start (a crash mid-append) is copied to <spool>/corrupt, logged, and cut off.
//
// TODO: done markers are appended without fsync, so a power cut (not a process crash) can
// deliver a message twice; an fsynced marker batch per delivery round would close that.
// TODO: one long-deferred message keeps its whole segment on disk; compaction would copy live
// records forward into the active segment.

// Errors of the spool that decide the reply to the client.
var (
	ErrSpoolFull  = errors.New("mta: spool full")
	ErrDiskFull   = errors.New("mta: free disk below the threshold")
	errSpoolWrite = errors.New("mta: spool write failed")
	errSpoolRead  = errors.New("mta: spool read failed")
	errSpoolShut  = errors.New("mta: spool closed")
)

const (
	recordMagic    = "MTQ1"
	recordHeadLen  = 12
	maxRecordBytes = 1 << 30
	// segmentMax is the size at which the active segment is sealed and a new one started.
	segmentMax = 16 << 20
	// drainedRotate: an active segment whose messages are all finished is replaced once it is
	// this big, so a drained queue does not keep a large file.
	drainedRotate = 1 << 20
	maxBatch      = 512
	// freeCheckEvery bounds how often the free disk space is asked of the kernel.
	freeCheckEvery = time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// envelope is what the spool keeps beside each message.
type envelope struct {
	ID       string    `json:"id"`
	From     string    `json:"from"`
	To       []string  `json:"to"`
	Client   string    `json:"client,omitempty"`
	Received time.Time `json:"received"`
	// EightBit: the body holds octets over 127 (or was declared BODY=8BITMIME); only a hop
	// that offers 8BITMIME may take it.
	EightBit bool `json:"8bit,omitempty"`
}

// queued is one spooled message.
type queued struct {
	env  envelope
	seg  *segment
	off  int64 // of the message data in the segment
	n    int64 // message bytes
	size int64 // record bytes, for the spool's size cap
	done []bool
}

// segment is one .log file and its .done file. Its fields are guarded by spool.mu, except
// that the committer reads size without it (it is the only writer).
type segment struct {
	num   uint64
	f     *os.File // the committer's, for appending; closed when the segment goes
	marks *os.File // the .done file, append-only
	size  int64
	live  int // messages not finished
	// pending counts the messages of the batch being appended: until the committer has
	// counted them live, the segment is not drained even if live is 0.
	pending int
	sealed  bool // recovered, or a write failed: never append to it again
}

type spool struct {
	dir, queueDir, corruptDir string
	log                       *slog.Logger
	maxBytes, minFree         int64

	// segmentMax and drainedRotate are the constants of the same names; tests shrink them to
	// rotate often.
	segmentMax, drainedRotate int64

	reqs     chan *commitReq
	w        *bufio.Writer // the committer's, reused across batches
	stop     chan struct{}
	loopDone chan struct{}

	mu        sync.Mutex
	closed    bool
	active    *segment
	segs      map[uint64]*segment
	nextSeg   uint64
	live      int
	bytes     int64 // live records plus reservations of puts in flight
	freeOK    bool
	freeCheck time.Time
}

type commitReq struct {
	env  envelope
	meta []byte
	data []byte
	q    *queued
	err  error
	done chan struct{}
}

// openSpool recovers the spool at dir and starts its committer. It returns the messages that
// still need delivery, oldest first.
func openSpool(dir string, maxBytes, minFree int64, log *slog.Logger) (*spool, []*queued, error) {
	sp := &spool{
		dir: dir, queueDir: filepath.Join(dir, "queue"), corruptDir: filepath.Join(dir, "corrupt"),
		log: log.With("component", "spool"), maxBytes: maxBytes, minFree: minFree,
		reqs: make(chan *commitReq), stop: make(chan struct{}), loopDone: make(chan struct{}),
		segs: make(map[uint64]*segment), nextSeg: 1, freeOK: true, w: bufio.NewWriterSize(nil, 256<<10),
		segmentMax: segmentMax, drainedRotate: drainedRotate,
	}
	for _, d := range []string{sp.dir, sp.queueDir, sp.corruptDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, fmt.Errorf("mta: spool: %w", err)
		}
	}
	msgs, err := sp.recover()
	if err != nil {
		sp.closeFiles()
		return nil, nil, err
	}
	go sp.commitLoop()
	return sp, msgs, nil
}

// put makes a message durable and returns it queued. It returns after the fsync.
func (sp *spool) put(env envelope, data []byte) (*queued, error) {
	meta, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSpoolWrite, err)
	}
	size := int64(recordHeadLen + len(meta) + 1 + len(data))
	if err := sp.reserve(size); err != nil {
		return nil, err
	}
	req := &commitReq{env: env, meta: meta, data: data, done: make(chan struct{})}
	select {
	case sp.reqs <- req:
	case <-sp.stop:
		sp.unreserve(size)
		return nil, errSpoolShut
	}
	<-req.done
	if req.err != nil {
		sp.unreserve(size)
	}
	return req.q, req.err
}

// reserve counts size against the spool's cap and checks free disk before the write.
func (sp *spool) reserve(size int64) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return errSpoolShut
	}
	if sp.maxBytes > 0 && sp.bytes+size > sp.maxBytes {
		return fmt.Errorf("%w: %d bytes queued, cap %d", ErrSpoolFull, sp.bytes, sp.maxBytes)
	}
	if !sp.freeEnoughLocked() {
		return fmt.Errorf("%w: under %d bytes free in %s", ErrDiskFull, sp.minFree, sp.dir)
	}
	sp.bytes += size
	return nil
}

func (sp *spool) unreserve(size int64) {
	sp.mu.Lock()
	sp.bytes -= size
	sp.mu.Unlock()
}

// freeEnoughLocked asks the kernel for free space at most once a second. Caller holds mu.
func (sp *spool) freeEnoughLocked() bool {
	if sp.minFree == 0 || time.Since(sp.freeCheck) < freeCheckEvery {
		return sp.freeOK
	}
	sp.freeCheck = time.Now()
	free, err := freeBytes(sp.dir)
	if err != nil {
		sp.log.Warn("free disk space unknown", "err", err)
		sp.freeOK = true
		return true
	}
	sp.freeOK = free >= sp.minFree
	return sp.freeOK
}

func (sp *spool) commitLoop() {
	defer close(sp.loopDone)
	batch := make([]*commitReq, 0, maxBatch)
	for {
		select {
		case r := <-sp.reqs:
			batch = append(batch[:0], r)
		case <-sp.stop:
			return
		}
		// Every session blocked on reqs right now joins this batch and shares its fsync.
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-sp.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		sp.commit(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// commit appends a batch to the active segment and fsyncs it once.
func (sp *spool) commit(batch []*commitReq) {
	seg, err := sp.beginAppend(len(batch))
	var size int64
	if err == nil {
		size, err = sp.appendBatch(seg, batch)
	}
	sp.endAppend(seg, len(batch), size, err)
	if err != nil {
		sp.log.Error("spool write failed; sealing segment", "segment", seg.name(), "err", err)
		for _, r := range batch {
			r.err = fmt.Errorf("%w: %v", errSpoolWrite, err)
		}
	}
}

// appendBatch writes the batch after seg's last record and returns seg's new size.
func (sp *spool) appendBatch(seg *segment, batch []*commitReq) (int64, error) {
	w := sp.w
	w.Reset(seg.f)
	off := seg.size
	for _, r := range batch {
		var head [recordHeadLen]byte
		copy(head[:4], recordMagic)
		plen := len(r.meta) + 1 + len(r.data)
		binary.BigEndian.PutUint32(head[4:8], uint32(plen))
		crc := crc32.Update(0, castagnoli, r.meta)
		crc = crc32.Update(crc, castagnoli, []byte{'\n'})
		crc = crc32.Update(crc, castagnoli, r.data)
		binary.BigEndian.PutUint32(head[8:], crc)
		w.Write(head[:])
		w.Write(r.meta)
		w.WriteByte('\n')
		w.Write(r.data)
		dataOff := off + recordHeadLen + int64(len(r.meta)) + 1
		size := int64(recordHeadLen + plen)
		r.q = &queued{env: r.env, seg: seg, off: dataOff, n: int64(len(r.data)), size: size, done: make([]bool, len(r.env.To))}
		off += size
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	// The one fsync the whole batch shares; nobody hears 250 before it returns.
	return off, seg.f.Sync()
}

// beginAppend returns the segment to append n messages to, holding it against removal until
// endAppend: a delivery that finishes the segment's last live message meanwhile must not
// close the file under the committer.
func (sp *spool) beginAppend(n int) (*segment, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	seg, err := sp.activeSegmentLocked()
	if err != nil {
		return nil, err
	}
	seg.pending += n
	return seg, nil
}

// endAppend counts a written batch live, or seals the segment after a failed write.
func (sp *spool) endAppend(seg *segment, n int, size int64, err error) {
	if seg == nil {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	seg.pending -= n
	if err == nil {
		seg.size = size
		seg.live += n
		sp.live += n
		return
	}
	// After a failed write or fsync the file's state is unknown: never append to it again.
	seg.sealed = true
	if sp.active == seg {
		sp.active = nil
	}
	if seg.live == 0 {
		sp.removeLocked(seg)
	}
}

// activeSegmentLocked returns the segment to append to, starting a new one when needed.
// Caller holds mu and is the committer.
func (sp *spool) activeSegmentLocked() (*segment, error) {
	if a := sp.active; a != nil && !a.sealed && a.size < sp.segmentMax {
		return a, nil
	}
	old := sp.active
	seg, err := sp.createSegmentLocked()
	if err != nil {
		return nil, err
	}
	sp.active = seg
	if old != nil && old.live == 0 && old.pending == 0 {
		sp.removeLocked(old)
	}
	return seg, nil
}

func (sp *spool) createSegmentLocked() (*segment, error) {
	seg := &segment{num: sp.nextSeg}
	sp.nextSeg++
	f, err := os.OpenFile(sp.segPath(seg.num, ".log"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	marks, err := os.OpenFile(sp.segPath(seg.num, ".done"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		f.Close()
		return nil, err
	}
	seg.f, seg.marks = f, marks
	// The new names must be durable before any record in them is acknowledged.
	if err := syncDir(sp.queueDir); err != nil {
		f.Close()
		marks.Close()
		return nil, err
	}
	sp.segs[seg.num] = seg
	return seg, nil
}

// open returns a handle of q's segment for reading, which the caller closes. Every reader
// opens its own: the committer's handle is closed when the segment goes, and a read must not
// depend on when another goroutine does that. A segment is never removed while a message in
// it is live, so the name is there while q is being delivered.
func (sp *spool) open(q *queued) (*os.File, error) {
	f, err := os.Open(sp.segPath(q.seg.num, ".log"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSpoolRead, err)
	}
	return f, nil
}

// messageReader reads q's message data from f, a handle from open. Its read errors wrap errSpoolRead,
// so that delivery can tell the spool's failures from the next hop's.
func messageReader(f *os.File, q *queued) io.Reader {
	return spoolReader{io.NewSectionReader(f, q.off, q.n)}
}

type spoolReader struct{ r io.Reader }

func (r spoolReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", errSpoolRead, err)
	}
	return n, err
}

// headers returns the header section of q (at most 64 KiB), for bounces.
func (sp *spool) headers(q *queued) ([]byte, error) {
	f, err := sp.open(q)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, min(q.n, 64<<10))
	n, err := f.ReadAt(b, q.off)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%w: %v", errSpoolRead, err)
	}
	b = b[:n]
	if i := indexBlankLine(b); i >= 0 {
		return b[:i], nil
	}
	return b, nil
}

// markDone records that the recipients at idx are finished, delivered or bounced.
func (sp *spool) markDone(q *queued, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	var b []byte
	for _, i := range idx {
		q.done[i] = true
		b = fmt.Appendf(b, "%s %d\n", q.env.ID, i)
	}
	_, err := q.seg.marks.Write(b)
	return err
}

// finish drops q from the spool's accounting; its segment goes when nothing in it is live.
func (sp *spool) finish(q *queued) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	seg := q.seg
	seg.live--
	sp.live--
	sp.bytes -= q.size
	switch {
	case seg.live > 0 || seg.pending > 0:
		// Still in use; a batch being appended makes it live again when the fsync returns.
	case seg != sp.active:
		sp.removeLocked(seg)
	case seg.size >= sp.drainedRotate:
		// Drained and big: start afresh at the next message instead of keeping the file.
		sp.active = nil
		sp.removeLocked(seg)
	}
}

func (sp *spool) removeLocked(seg *segment) {
	delete(sp.segs, seg.num)
	seg.f.Close()
	seg.marks.Close()
	for _, ext := range []string{".log", ".done"} {
		if err := os.Remove(sp.segPath(seg.num, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			sp.log.Warn("finished segment not removed", "segment", seg.name(), "err", err)
		}
	}
}

// depth is the number of messages not yet finished.
func (sp *spool) depth() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.live
}

// close stops the committer and closes the files; what is queued stays on disk.
func (sp *spool) close() error {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		return nil
	}
	sp.closed = true
	sp.mu.Unlock()
	close(sp.stop)
	<-sp.loopDone
	return sp.closeFiles()
}

func (sp *spool) closeFiles() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var first error
	for _, seg := range sp.segs {
		// The markers are synced at a clean stop, so a planned restart redelivers nothing.
		if err := seg.marks.Sync(); err != nil && first == nil {
			first = err
		}
		seg.marks.Close()
		seg.f.Close()
	}
	return first
}

func (sp *spool) segPath(num uint64, ext string) string {
	return filepath.Join(sp.queueDir, fmt.Sprintf("%016d%s", num, ext))
}

func (seg *segment) name() string {
	if seg == nil {
		return ""
	}
	return fmt.Sprintf("%016d", seg.num)
}

func indexBlankLine(b []byte) int {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i + 2
		}
	}
	return -1
}
