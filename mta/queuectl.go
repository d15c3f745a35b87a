package mta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// QueueControl is what `mtastress queue` works through: a running node over its control
// socket, or a stopped node's spool directly.
type QueueControl interface {
	// Live reports whether a running node answers.
	Live() bool
	List() ([]QueueEntry, error)
	// Flush makes id, or everything when "", due now; a stopped node tries everything at its
	// next start anyway, and reports 0.
	Flush(id string) (int, error)
	Delete(id string) error
	Hold(id string) error
	Release(id string) error
	Close() error
}

// OpenQueue reaches the node whose spool is spoolDir: over its control socket when it runs,
// else on the spool itself.
//
// TODO: a node being started while a tool works on its stopped spool is not excluded; an
// flock on the spool, taken by both, would close that window.
func OpenQueue(spoolDir string) (QueueControl, error) {
	path := controlSocketPath(spoolDir)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return newLiveQueue(path), nil
	}
	return openOfflineQueue(spoolDir)
}

// liveQueue talks to a running node.
type liveQueue struct{ c *http.Client }

func newLiveQueue(path string) *liveQueue {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &liveQueue{c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (q *liveQueue) Live() bool   { return true }
func (q *liveQueue) Close() error { q.c.CloseIdleConnections(); return nil }

func (q *liveQueue) List() ([]QueueEntry, error) {
	rep, err := q.do(http.MethodGet, "queue", "")
	return rep.Entries, err
}

func (q *liveQueue) Flush(id string) (int, error) {
	rep, err := q.do(http.MethodPost, "queue/flush", id)
	return rep.Count, err
}

func (q *liveQueue) Delete(id string) error {
	_, err := q.do(http.MethodPost, "queue/delete", id)
	return err
}
func (q *liveQueue) Hold(id string) error {
	_, err := q.do(http.MethodPost, "queue/hold", id)
	return err
}
func (q *liveQueue) Release(id string) error {
	_, err := q.do(http.MethodPost, "queue/release", id)
	return err
}

func (q *liveQueue) do(method, path, id string) (controlReply, error) {
	var rep controlReply
	form := url.Values{"id": {id}}.Encode()
	req, err := http.NewRequest(method, "http://node/"+path+"?"+form, nil)
	if err != nil {
		return rep, err
	}
	resp, err := q.c.Do(req)
	if err != nil {
		return rep, fmt.Errorf("mta: control socket: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("mta: control socket reply: %w", err)
	}
	switch {
	case rep.Error == "":
		return rep, nil
	case rep.Kind == "not_found":
		return rep, fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	case rep.Kind == "in_flight":
		return rep, fmt.Errorf("%w: %s", ErrInFlight, id)
	}
	return rep, errors.New(rep.Error)
}

// offlineQueue works on a stopped node's spool: it opens it as the node would (recovering
// it), and edits the hold file.
type offlineQueue struct {
	dir  string
	sp   *spool
	msgs map[string]*queued
}

func openOfflineQueue(dir string) (*offlineQueue, error) {
	// A tool never makes a spool: a mistyped path would look like an empty queue.
	if st, err := os.Stat(filepath.Join(dir, "queue")); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s has no queue directory (is it the node's spool?)", ErrNoSpool, dir)
	}
	sp, msgs, err := openSpool(dir, 0, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	q := &offlineQueue{dir: dir, sp: sp, msgs: map[string]*queued{}}
	for _, m := range msgs {
		q.msgs[m.env.ID] = m
	}
	return q, nil
}

func (q *offlineQueue) Live() bool   { return false }
func (q *offlineQueue) Close() error { return q.sp.close() }

func (q *offlineQueue) List() ([]QueueEntry, error) {
	held, err := readHold(q.dir)
	if err != nil {
		return nil, err
	}
	out := make([]QueueEntry, 0, len(q.msgs))
	for _, m := range q.msgs {
		e := entryOf(m, true)
		e.Held = held[m.env.ID]
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b QueueEntry) int { return a.Received.Compare(b.Received) })
	return out, nil
}

func (q *offlineQueue) Flush(id string) (int, error) {
	if _, ok := q.msgs[id]; id != "" && !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	}
	return 0, nil
}

func (q *offlineQueue) Delete(id string) error {
	m, ok := q.msgs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	}
	var idx []int
	for i := range m.env.To {
		if !m.done[i] {
			idx = append(idx, i)
		}
	}
	if err := q.sp.markDone(m, idx); err != nil {
		return err
	}
	q.sp.finish(m)
	delete(q.msgs, id)
	return q.setHold(id, false)
}

func (q *offlineQueue) Hold(id string) error    { return q.checkedHold(id, true) }
func (q *offlineQueue) Release(id string) error { return q.checkedHold(id, false) }

func (q *offlineQueue) checkedHold(id string, on bool) error {
	if _, ok := q.msgs[id]; !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	}
	return q.setHold(id, on)
}

func (q *offlineQueue) setHold(id string, on bool) error {
	ids, err := readHold(q.dir)
	if err != nil {
		return err
	}
	if ids[id] == on {
		return nil
	}
	if on {
		ids[id] = true
	} else {
		delete(ids, id)
	}
	return writeHold(q.dir, ids)
}

// FormatQueue writes entries as `mtastress queue list` prints them: one line per message,
// then its recipients indented.
func FormatQueue(entries []QueueEntry, now time.Time) string {
	var b strings.Builder
	for _, e := range entries {
		state := ""
		switch {
		case e.Held:
			state = " HELD"
		case e.InFlight:
			state = " in-flight"
		}
		next := "-"
		if !e.NextTry.IsZero() {
			next = e.NextTry.Format(time.RFC3339)
		}
		from := e.From
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(&b, "%s%s  age %s  %d bytes  from %s  attempts %d  next %s\n", e.ID, state,
			now.Sub(e.Received).Round(time.Second), e.Size, from, e.Attempts, next)
		for _, to := range e.To {
			fmt.Fprintf(&b, "    %s\n", to)
		}
		if e.LastError != "" {
			fmt.Fprintf(&b, "    last error: %s\n", e.LastError)
		}
	}
	if len(entries) == 1 {
		b.WriteString("1 message\n")
	} else {
		fmt.Fprintf(&b, "%d messages\n", len(entries))
	}
	return b.String()
}
