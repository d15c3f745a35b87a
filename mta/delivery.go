package mta

import (
	"container/heap"
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Delivery relays spooled messages to their next hops. A scheduler hands due messages to a
// pool of workers; each attempt reports a status per recipient, and the message is retried,
// bounced or finished accordingly. Retries use real time, never the shared clock.

// job is one queued message and its retry schedule.
type job struct {
	q      *queued
	failed bool // some recipient was bounced; the worker's alone

	// Under delivery.mu: the queue tools read them while a worker runs the job.
	attempts int
	next     time.Time
	lastErr  string
	queued   bool // in the heap
	running  bool // handed to a worker
	held     bool // kept from delivery by an operator; parked outside the heap
	deleted  bool // removed by an operator; dropped when the heap reaches it
}

type delivery struct {
	srv *Server
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	due    jobHeap
	jobs   map[string]*job // every unfinished message, by queue id
	holdAt map[string]bool // ids held when the node started (the hold file)

	wake chan struct{}
	work chan *job
	// sched stops the scheduler and idle workers; attempts stops attempts in flight.
	sched, attempts         context.Context
	stopSched, stopAttempts context.CancelFunc
	schedDone, workersDone  sync.WaitGroup
	hops                    *hopPool
}

func newDelivery(srv *Server) *delivery {
	d := &delivery{srv: srv, cfg: srv.cfg, log: srv.log.With("component", "delivery"),
		wake: make(chan struct{}, 1), work: make(chan *job), jobs: map[string]*job{}}
	d.sched, d.stopSched = context.WithCancel(context.Background())
	d.attempts, d.stopAttempts = context.WithCancel(context.Background())
	d.hops = newHopPool(srv.cfg)
	return d
}

func (d *delivery) start() {
	d.schedDone.Add(1)
	go d.schedule()
	for range d.cfg.DeliveryWorkers {
		d.workersDone.Add(1)
		go d.worker()
	}
}

// add queues a message for an attempt at once.
func (d *delivery) add(q *queued) {
	d.mu.Lock()
	j := &job{q: q, next: time.Now(), held: d.holdAt[q.env.ID]}
	d.jobs[q.env.ID] = j
	if !j.held {
		j.queued = true
		heap.Push(&d.due, j)
	}
	d.mu.Unlock()
	d.poke()
}

// requeue puts j back after an attempt, due at next; a job held meanwhile is parked.
func (d *delivery) requeue(j *job, next time.Time, lastErr string) {
	d.mu.Lock()
	j.attempts++
	j.next, j.lastErr, j.running = next, lastErr, false
	if !j.held {
		j.queued = true
		heap.Push(&d.due, j)
	}
	d.mu.Unlock()
	d.poke()
}

func (d *delivery) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *delivery) schedule() {
	defer d.schedDone.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		j, wait := d.nextDue()
		if j != nil {
			select {
			case d.work <- j:
			case <-d.sched.Done():
				return
			}
			continue
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-d.wake:
		case <-d.sched.Done():
			return
		}
	}
}

// nextDue pops the earliest job if it is due, or says how long until it is.
func (d *delivery) nextDue() (*job, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Deleted and held jobs leave the heap when they reach its top.
	for len(d.due) > 0 && (d.due[0].deleted || d.due[0].held) {
		heap.Pop(&d.due).(*job).queued = false
	}
	if len(d.due) == 0 {
		return nil, time.Hour
	}
	if wait := time.Until(d.due[0].next); wait > 0 {
		return nil, wait
	}
	j := heap.Pop(&d.due).(*job)
	j.queued, j.running = false, true
	return j, 0
}

func (d *delivery) worker() {
	defer d.workersDone.Done()
	for {
		select {
		case j := <-d.work:
			d.attempt(j)
		case <-d.sched.Done():
			return
		}
	}
}

// attempt tries every unfinished recipient of j once, grouped by next hop.
func (d *delivery) attempt(j *job) {
	q := j.q
	groups := map[string][]int{}
	for i, to := range q.env.To {
		if !q.done[i] {
			hop := d.srv.nextHop(to)
			groups[hop] = append(groups[hop], i)
		}
	}
	hops := make([]string, 0, len(groups))
	for h := range groups {
		hops = append(hops, h)
	}
	slices.Sort(hops)
	// A handle of this attempt's own: a fresh open per attempt also means that a read error
	// is never sticky across retries.
	f, err := d.srv.spool.open(q)
	if err != nil {
		d.settle(j, d.spoolFailed(q, err, hops, groups))
		return
	}
	defer f.Close()
	var results []rcptResult
	for _, hop := range hops {
		results = append(results, d.sendHop(hop, q, f, groups[hop])...)
	}
	d.settle(j, results)
}

// spoolFailed defers every recipient of a message the spool could not open; the next attempt
// opens afresh.
func (d *delivery) spoolFailed(q *queued, err error, hops []string, groups map[string][]int) []rcptResult {
	d.srv.spoolReadFailed(q, err)
	var out []rcptResult
	for _, hop := range hops {
		out = append(out, spoolResults(hop, groups[hop], err)...)
	}
	return out
}

// settle applies an attempt's results: delivered recipients are marked, failed ones bounced,
// and the rest retried after a backoff, or bounced once the message is older than GiveUp.
func (d *delivery) settle(j *job, results []rcptResult) {
	q := j.q
	expired := time.Since(q.env.Received) >= d.cfg.GiveUp
	var delivered []int
	var failed, deferred []rcptResult
	for _, r := range results {
		switch {
		case r.ok:
			delivered = append(delivered, r.idx)
			d.srv.mailDelivered(q, r)
		case !r.temp:
			failed = append(failed, r)
		case expired:
			r.expired = true
			failed = append(failed, r)
		default:
			deferred = append(deferred, r)
		}
	}
	if err := d.srv.spool.markDone(q, delivered); err != nil {
		d.log.Error("delivery not recorded; a restart may deliver again", "queue_id", q.env.ID, "err", err)
	}
	if len(failed) > 0 {
		if err := d.srv.bounce(q, failed); err != nil {
			// The bounce could not be queued: keep the recipients and try again later.
			d.log.Warn("bounce not queued; recipients kept for retry", "queue_id", q.env.ID, "err", err)
			deferred = append(deferred, failed...)
		} else {
			j.failed = true
			idx := make([]int, len(failed))
			for i, r := range failed {
				idx[i] = r.idx
			}
			if err := d.srv.spool.markDone(q, idx); err != nil {
				d.log.Error("bounce not recorded; a restart may bounce again", "queue_id", q.env.ID, "err", err)
			}
		}
	}
	if len(deferred) > 0 {
		next := time.Now().Add(d.backoff(d.attemptsOf(j) + 1))
		for _, r := range deferred {
			d.srv.mailDeferred(q, r, next)
		}
		d.requeue(j, next, deferred[0].text)
		return
	}
	d.finish(j)
}

func (d *delivery) attemptsOf(j *job) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return j.attempts
}

func (d *delivery) finish(j *job) {
	d.mu.Lock()
	delete(d.jobs, j.q.env.ID)
	j.running = false
	d.mu.Unlock()
	d.srv.spool.finish(j.q)
	if j.failed {
		d.srv.messagesBounced.Add(1)
	} else {
		d.srv.messagesDelivered.Add(1)
	}
}

// backoff is the wait before attempt n+1: exponential from RetryMin, capped at RetryMax, with
// ±20% jitter so that messages deferred together do not retry together.
func (d *delivery) backoff(n int) time.Duration {
	b := d.cfg.RetryMin
	for i := 1; i < n && b < d.cfg.RetryMax; i++ {
		b *= 2
	}
	b = time.Duration(float64(b) * (0.8 + 0.4*rand.Float64()))
	return min(max(b, d.cfg.RetryMin), d.cfg.RetryMax)
}

// stop lets attempts in flight finish until ctx ends, then aborts them; what is not delivered
// stays in the spool for the next start.
func (d *delivery) stop(ctx context.Context) {
	d.stopSched()
	d.schedDone.Wait()
	done := make(chan struct{})
	go func() {
		d.workersDone.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		d.stopAttempts()
		<-done
	}
	d.stopAttempts()
	d.hops.closeAll()
}

// nextHop is the relay for a recipient: its domain's transport, else the default relay.
func (s *Server) nextHop(rcpt string) string {
	_, domain, _ := strings.Cut(rcpt, "@")
	rt := s.routing.Load()
	if hop, ok := rt.transports[strings.ToLower(domain)]; ok {
		return hop
	}
	return rt.relay
}

// jobHeap orders jobs by their next attempt.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h jobHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// spoolReadFailed logs a message the spool could not read, at error level: unlike a next
// hop's 4xx it is this node's fault, and an operator must look at the disk.
func (s *Server) spoolReadFailed(q *queued, err error) {
	s.metrics.spoolReadErrors.Inc()
	s.log.Error("message not readable from the spool; kept for retry", "component", "delivery",
		"queue_id", q.env.ID, "segment", q.seg.name(), "err", err)
}
