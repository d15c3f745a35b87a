package mta

import (
	"container/heap"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Queue operations for `mtastress queue`: list, flush, delete, hold and release. On a running
// node they run in the delivery scheduler's terms (under delivery.mu); on a stopped node,
// queue_offline.go does them on the spool's files.

// Errors of the queue operations.
var (
	ErrNoSuchMessage = errors.New("mta: no such message in the queue")
	ErrInFlight      = errors.New("mta: message is being delivered right now; try again")
	ErrNoSpool       = errors.New("mta: no spool")
)

// QueueEntry is one queued message as `mtastress queue list` shows it.
type QueueEntry struct {
	ID       string    `json:"id"`
	Received time.Time `json:"received"`
	Size     int64     `json:"size"`
	From     string    `json:"from"`
	To       []string  `json:"to"` // the recipients not yet finished
	Held     bool      `json:"held"`
	Attempts int       `json:"attempts"`
	// LastError and NextTry live in memory: a stopped node shows them empty.
	LastError string    `json:"last_error,omitempty"`
	NextTry   time.Time `json:"next_try,omitzero"`
	InFlight  bool      `json:"in_flight,omitempty"`
}

// holdFile lists the ids of held messages, one a line, beside the queue: holding survives a
// restart, and a stopped node's hold is edited in the same file.
func holdFile(spoolDir string) string { return filepath.Join(spoolDir, "hold") }

func readHold(spoolDir string) (map[string]bool, error) {
	b, err := os.ReadFile(holdFile(spoolDir))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, id := range strings.Fields(string(b)) {
		out[id] = true
	}
	return out, nil
}

// writeHold replaces the hold file through a rename, so that a crash leaves the old or the
// new list, never half of one.
func writeHold(spoolDir string, ids map[string]bool) error {
	keys := slices.Sorted(func(yield func(string) bool) {
		for id := range ids {
			if !yield(id) {
				return
			}
		}
	})
	tmp := holdFile(spoolDir) + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, holdFile(spoolDir))
}

func entryOf(q *queued, done bool) QueueEntry {
	e := QueueEntry{ID: q.env.ID, Received: q.env.Received, Size: q.n, From: q.env.From}
	for i, to := range q.env.To {
		if !done || !q.done[i] {
			e.To = append(e.To, to)
		}
	}
	return e
}

// list is every message the scheduler knows, oldest first.
func (d *delivery) list() []QueueEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]QueueEntry, 0, len(d.jobs))
	for _, j := range d.jobs {
		// A running attempt writes q.done; its recipients are shown whole until it settles.
		e := entryOf(j.q, !j.running)
		e.Held, e.Attempts, e.LastError, e.InFlight = j.held, j.attempts, j.lastErr, j.running
		if !j.held && !j.running {
			e.NextTry = j.next
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b QueueEntry) int { return a.Received.Compare(b.Received) })
	return out
}

// flush makes id, or every message when id is "", due now. A held message stays held.
func (d *delivery) flush(id string) (int, error) {
	d.mu.Lock()
	n := 0
	for _, j := range d.jobs {
		if (id == "" || j.q.env.ID == id) && !j.held && !j.running {
			j.next = time.Now()
			n++
		}
	}
	_, known := d.jobs[id]
	heap.Init(&d.due) // the order changed under the heap
	d.mu.Unlock()
	d.poke()
	if id != "" && !known {
		return 0, fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	}
	return n, nil
}

// setHold holds or releases id, in memory and in the hold file.
func (d *delivery) setHold(id string, on bool) error {
	d.mu.Lock()
	j, ok := d.jobs[id]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	}
	wasParked := j.held && !j.queued && !j.running
	j.held = on
	if !on && wasParked {
		// A parked job left the heap; it goes back, due now.
		j.next, j.queued = time.Now(), true
		heap.Push(&d.due, j)
	}
	d.mu.Unlock()
	d.poke()
	return d.srv.updateHoldFile(id, on)
}

// remove deletes id from the queue without delivering or bouncing it.
func (d *delivery) remove(id string) error {
	d.mu.Lock()
	j, ok := d.jobs[id]
	switch {
	case !ok:
		d.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	case j.running:
		// TODO: deleting during an attempt would need the attempt to check back before DATA;
		// until then the operator retries, and the message may be delivered meanwhile.
		d.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrInFlight, id)
	}
	j.deleted = true // the scheduler drops it if it is still in the heap
	delete(d.jobs, id)
	d.mu.Unlock()

	var idx []int
	for i := range j.q.env.To {
		if !j.q.done[i] {
			idx = append(idx, i)
		}
	}
	if err := d.srv.spool.markDone(j.q, idx); err != nil {
		return fmt.Errorf("mta: delete %s not recorded: %w", id, err)
	}
	d.srv.spool.finish(j.q)
	d.srv.mailLog.Info("mail", "event", "deleted", "queue_id", id, "from", j.q.env.From,
		"to", j.q.env.To, "client", j.q.env.Client)
	if j.held {
		return d.srv.updateHoldFile(id, false)
	}
	return nil
}

// updateHoldFile records one hold or release in the hold file.
func (s *Server) updateHoldFile(id string, on bool) error {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	ids, err := readHold(s.cfg.SpoolDir)
	if err != nil {
		return err
	}
	if on {
		ids[id] = true
	} else {
		delete(ids, id)
	}
	return writeHold(s.cfg.SpoolDir, ids)
}

// Queue lists the queued messages.
func (s *Server) Queue() []QueueEntry { return s.delivery.list() }

// QueueFlush makes id (every message when "") due now and returns how many.
func (s *Server) QueueFlush(id string) (int, error) { return s.delivery.flush(id) }

// QueueDelete removes id from the queue without delivering or bouncing it.
func (s *Server) QueueDelete(id string) error { return s.delivery.remove(id) }

// QueueHold keeps id from delivery until QueueRelease; it survives a restart.
func (s *Server) QueueHold(id string) error { return s.delivery.setHold(id, true) }

// QueueRelease lets a held message go, due now.
func (s *Server) QueueRelease(id string) error { return s.delivery.setHold(id, false) }
