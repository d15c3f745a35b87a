// Package simulator replays email-attack scenarios against real MTA nodes and checks the alerts
// that land in MailHog. It owns the embedded stack (NATS, MailHog, a next-hop sink, one MTA per
// scenario node and the alert service, all in-process on one shared clock), the load generator,
// the inbox checks and the reports.
package simulator

import (
	"sync"
	"time"
)

// Clock is the shared clock of the embedded stack: real time plus an offset that skip phases
// advance. MTA state machines, event times and alert rules read it; SMTP timeouts, delivery
// retries and the replay's pacing use real time.
type Clock struct {
	mu       sync.Mutex
	offset   time.Duration
	segments []segment // offsets in force, oldest first
}

// segment is an offset and the shared-clock time from which it holds.
type segment struct {
	from   time.Time
	offset time.Duration
}

// NewClock returns a clock that starts at real time.
func NewClock() *Clock {
	return &Clock{segments: []segment{{offset: 0}}}
}

// Now returns real time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d. The replay calls it only when nothing is in flight, so
// that no episode spans a skip.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	c.segments = append(c.segments, segment{from: time.Now().Add(c.offset), offset: c.offset})
}

// Offset is the current offset from real time.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// Real maps a time read on this clock back to real time, using the offset that was in force then.
func (c *Clock) Real(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	off := c.segments[0].offset
	for _, s := range c.segments[1:] {
		if t.Before(s.from) {
			break
		}
		off = s.offset
	}
	return t.Add(-off)
}
