package mta

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate limits per client address, as Postfix's anvil keeps them: connections, messages (MAIL
// commands) and recipients (RCPT commands, refused ones too: a harvester's are mostly refused)
// per minute. Each is a token bucket: a client may spend the whole minute's allowance at
// once, then gets it back evenly over the minute. Counters live in memory only; a restart
// forgets them, as anvil's do.

// RateLimits caps what one client address may do per minute; 0 leaves a kind unlimited.
// Connections on an exempt listener and clients in Exempt are never limited.
type RateLimits struct {
	ConnectionsPerMinute, MessagesPerMinute, RecipientsPerMinute int
	Exempt                                                       []netip.Prefix
}

type rateKind int

const (
	rateConnections rateKind = iota
	rateMessages
	rateRecipients
	rateKinds
)

var rateKindNames = [rateKinds]string{"connections", "messages", "recipients"}

func (r RateLimits) perMinute(k rateKind) int {
	return [rateKinds]int{r.ConnectionsPerMinute, r.MessagesPerMinute, r.RecipientsPerMinute}[k]
}

const (
	rateWindow = time.Minute
	// maxRateClients bounds the table under a flood from many addresses (a botnet). Past it
	// new addresses go unlimited until idle ones are swept: failing open keeps mail flowing.
	maxRateClients = 1 << 17
)

// rateLimiter holds the counters of every client seen in the last minute.
type rateLimiter struct {
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	cfg       RateLimits
	clients   map[netip.Addr]*clientRates
	peaks     [rateKinds]int // most events of one client in one minute, since start
	lastSweep time.Time
	fullSaid  time.Time
}

// clientRates are one address's buckets, and its count in the current minute for the peaks.
type clientRates struct {
	buckets  [rateKinds]*rate.Limiter
	winStart [rateKinds]time.Time
	winCount [rateKinds]int
	last     time.Time
}

func newRateLimiter(cfg RateLimits, log *slog.Logger) *rateLimiter {
	return &rateLimiter{log: log, now: time.Now, cfg: cloneRates(cfg), clients: map[netip.Addr]*clientRates{}}
}

func cloneRates(r RateLimits) RateLimits {
	r.Exempt = slices.Clone(r.Exempt)
	return r
}

// configure replaces the limits (a reload); buckets of a changed kind start afresh.
func (rl *rateLimiter) configure(cfg RateLimits) {
	rl.mu.Lock()
	rl.cfg = cloneRates(cfg)
	rl.mu.Unlock()
}

// allow counts one event of kind by ip and reports whether it is within the limit.
func (rl *rateLimiter) allow(kind rateKind, ip netip.Addr) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	limit := rl.cfg.perMinute(kind)
	if limit == 0 || rl.exemptLocked(ip) {
		return true
	}
	now := rl.now()
	c := rl.clientLocked(ip, now)
	if c == nil {
		return true
	}
	c.last = now
	rl.countLocked(c, kind, now)
	b := c.buckets[kind]
	if b == nil || b.Burst() != limit {
		b = rate.NewLimiter(rate.Limit(float64(limit)/rateWindow.Seconds()), limit)
		c.buckets[kind] = b
	}
	return b.AllowN(now, 1)
}

func (rl *rateLimiter) exemptLocked(ip netip.Addr) bool {
	for _, p := range rl.cfg.Exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// countLocked keeps the client's count in the current minute, and the peak of all of them.
// Every attempt counts, refused or not: the peak shows how hard a client pushed.
func (rl *rateLimiter) countLocked(c *clientRates, kind rateKind, now time.Time) {
	if now.Sub(c.winStart[kind]) >= rateWindow {
		c.winStart[kind], c.winCount[kind] = now, 0
	}
	c.winCount[kind]++
	rl.peaks[kind] = max(rl.peaks[kind], c.winCount[kind])
}

// clientLocked returns ip's counters, sweeping idle ones at most once a minute; nil when the
// table is full.
func (rl *rateLimiter) clientLocked(ip netip.Addr, now time.Time) *clientRates {
	if c := rl.clients[ip]; c != nil {
		return c
	}
	if now.Sub(rl.lastSweep) >= rateWindow || len(rl.clients) >= maxRateClients {
		rl.sweepLocked(now)
	}
	if len(rl.clients) >= maxRateClients {
		if now.Sub(rl.fullSaid) >= rateWindow {
			rl.fullSaid = now
			rl.log.Warn("rate limit table full; new client addresses go unlimited for now", "clients", len(rl.clients))
		}
		return nil
	}
	c := &clientRates{}
	rl.clients[ip] = c
	return c
}

// sweepLocked drops clients idle for a minute: their buckets are full again, as a new
// client's would be.
func (rl *rateLimiter) sweepLocked(now time.Time) {
	rl.lastSweep = now
	for ip, c := range rl.clients {
		if now.Sub(c.last) >= rateWindow {
			delete(rl.clients, ip)
		}
	}
}

func (rl *rateLimiter) peak(kind rateKind) int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.peaks[kind]
}

// rateLimited counts and logs a refusal by a rate limit.
func (s *Server) rateLimited(kind rateKind, ip netip.Addr) {
	s.metrics.rateLimited.WithLabelValues(rateKindNames[kind]).Inc()
	s.log.Info("rate limit reached", "kind", rateKindNames[kind], "client", ip.String(),
		"per_minute", s.rates.limit(kind))
}

func (rl *rateLimiter) limit(kind rateKind) int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.cfg.perMinute(kind)
}
