package mta

import (
	"container/list"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Session slots. go-smtp has no connection cap and creates a Session only after EHLO, so the
// cap lives below it: a net.Listener whose Accept hands go-smtp a connection only once it holds
// a slot. Until then the connection waits, first come first served, with its greeting held back,
// as it would in Postfix's listen backlog.
//
// Lock order: slotPool.mu, then slotConn.mu. EventSink methods run under slotPool.mu. The rate
// limiter's lock is a leaf, taken under either.

// Replies written before go-smtp ever sees the connection.
const (
	replyBusy     = "421 4.3.2 %s all slots busy, try again later"
	replyCap      = "421 4.7.0 %s too many connections from your address, try again later"
	replyShutdown = "421 4.3.2 %s service shutting down, try again later"
	replyRate     = "421 4.7.0 %s connection rate limit reached, slow down"
)

// rejectWriteTimeout bounds the write of a 421 to a client that may not read.
const rejectWriteTimeout = 2 * time.Second

// rejectLinger is how long a rejected connection's input is drained before the close, so that
// a client that talked first (pregreet) reads its 421 instead of a reset.
const rejectLinger = time.Second

// slotPool holds the node's slots, the waiting line and the stress machine they drive.
type slotPool struct {
	srv *Server
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	closed    bool
	waiting   list.List // of *waiter, oldest first
	perClient map[netip.Addr]int
	conns     map[*slotConn]struct{} // every live wrapped connection, exempt ones too
	lingers   map[*slotConn]struct{} // closed connections still being read (slotConn.linger)
	stressed  int                    // active sessions running with stress settings
	stress    stressRun
	bg        sync.WaitGroup // 421 writers and lingering closes

	// Counters, under mu.
	served, tempfailed uint64
	peakActive         int
}

// waiter is a connection waiting for a slot. A goroutine watches its socket (watch), so that a
// client that gives up and hangs up leaves the line at once instead of holding its place, and
// the WaitMax guard, until its wait runs out: in a flood, bots that connect and drop would
// otherwise fill the line ahead of real clients.
type waiter struct {
	conn  net.Conn
	ip    netip.Addr
	l     *slotListener
	since time.Time
	timer *time.Timer
	elem  *list.Element // nil once granted or expired
}

func newSlotPool(srv *Server) *slotPool {
	p := &slotPool{
		srv:       srv,
		cfg:       srv.cfg,
		log:       srv.log,
		perClient: make(map[netip.Addr]int),
		conns:     make(map[*slotConn]struct{}),
		lingers:   make(map[*slotConn]struct{}),
	}
	p.stress.init(p)
	return p
}

// admit decides the fate of a freshly accepted connection. It never blocks on the client.
func (p *slotPool) admit(l *slotListener, c net.Conn) {
	ip := remoteIP(c)
	// Asked before taking mu, so that the limiter's work is not done under the slot lock. Its
	// lock is a leaf: it never takes another.
	limited := !p.srv.rates.allow(rateConnections, ip)
	t := p.srv.tuning.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		p.rejectLocked(c, replyShutdown)
	case limited:
		p.srv.rateLimited(rateConnections, ip)
		p.rejectLocked(c, replyRate)
	case p.perClient[ip] >= t.clientCap:
		// The cap counts holding and waiting connections alike: one address cannot fill the
		// waiting line either.
		p.rejectLocked(c, replyCap)
	case p.stress.state.Active < p.cfg.Limit && p.waiting.Len() == 0:
		p.perClient[ip]++
		p.grantLocked(l, c, ip, time.Now(), true)
	case p.waiting.Len() >= t.waitMax:
		// The waiting line is capped because every waiter costs a descriptor and memory.
		p.rejectLocked(c, replyBusy)
	default:
		p.perClient[ip]++
		w := &waiter{conn: c, ip: ip, l: l, since: time.Now()}
		w.elem = p.waiting.PushBack(w)
		w.timer = time.AfterFunc(t.slotWait, func() { p.expire(w) })
		p.stress.noteDemandLocked()
		p.bg.Add(1)
		go p.watch(w)
	}
}

// watch waits for a waiter's client to hang up, or for bytes from it (a client that talks
// before its greeting is then left to the session, which may judge it), or for the wait to end:
// a grant, an expiry and the pool's close each set a read deadline that cuts the watch short.
func (p *slotPool) watch(w *waiter) {
	defer p.bg.Done()
	if !peerGone(w.conn) && !p.watchTalker(w) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.elem == nil {
		return // granted or answered meanwhile
	}
	p.waiting.Remove(w.elem)
	w.elem = nil
	w.timer.Stop()
	p.dropClientLocked(w.ip)
	p.srv.metrics.sessions.WithLabelValues(outcomeAbandoned).Inc()
	p.srv.metrics.slotWait.Observe(time.Since(w.since).Seconds())
	p.stress.noteDemandLocked()
	_ = w.conn.Close()
}

// talkerPoll is how often a waiter whose early bytes wait unread is looked at.
const talkerPoll = 200 * time.Millisecond

// watchTalker follows a waiter that sent bytes before its greeting, whose end MSG_PEEK cannot
// see behind them: it asks the kernel for the connection's state until the wait ends, and
// reports whether the client hung up first.
func (p *slotPool) watchTalker(w *waiter) bool {
	if !canWatchTalkers {
		return false
	}
	for {
		p.mu.Lock()
		waiting := w.elem != nil
		p.mu.Unlock()
		if !waiting {
			return false
		}
		if peerClosed(w.conn) {
			return true
		}
		time.Sleep(talkerPoll)
	}
}

// endWait stops a waiter's watch; it is out of the line (elem nil). Caller holds mu.
func (w *waiter) endWait() { _ = w.conn.SetReadDeadline(time.Now()) }

// grantLocked gives c a slot and hands it to its listener's Accept. step is false when a slot
// passes straight from a closing connection to a waiter: active does not change, so the stress
// machine is not asked (a cool-down of 0 would otherwise end and restart the episode at each
// hand-over). Caller holds mu and has counted c in perClient.
func (p *slotPool) grantLocked(l *slotListener, c net.Conn, ip netip.Addr, since time.Time, step bool) {
	// Sessions that start in stress run with stress settings; those that began before keep
	// theirs. The connection that takes the last slot started before stress, as in Postfix.
	inStress := p.stress.state.InStress
	if step {
		p.stress.stepLocked(SlotTaken)
	}
	sc := p.srv.wrapConn(c, ip, p, inStress)
	p.conns[sc] = struct{}{}
	if inStress {
		p.stressed++
	}
	p.served++
	p.peakActive = max(p.peakActive, p.stress.state.Active)
	p.stress.noteDemandLocked()
	p.srv.metrics.sessions.WithLabelValues(outcomeServed).Inc()
	p.srv.metrics.slotWait.Observe(time.Since(since).Seconds())

	// ready has room for every slot, so this send cannot block; the default is a guard. The
	// close runs on its own goroutine because it takes mu.
	if l.closed {
		go sc.Close()
		return
	}
	select {
	case l.ready <- sc:
	default:
		p.log.Error("slot listener queue full; closing connection", "client", ip)
		go sc.Close()
	}
}

// expire ends a wait that ran out: 421 4.3.2, as Postfix's clients see when the backlog is full.
func (p *slotPool) expire(w *waiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.elem == nil {
		return
	}
	p.waiting.Remove(w.elem)
	w.elem = nil
	w.endWait()
	p.dropClientLocked(w.ip)
	p.srv.metrics.slotWait.Observe(time.Since(w.since).Seconds())
	p.rejectLocked(w.conn, replyBusy)
}

// release frees sc's slot, passing it to the oldest waiter if there is one.
func (p *slotPool) release(sc *slotConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.conns[sc]; !ok {
		return
	}
	delete(p.conns, sc)
	if sc.exempt {
		return
	}
	p.dropClientLocked(sc.ip)
	if sc.set.stress {
		p.stressed--
	}
	if p.closed || p.waiting.Len() == 0 {
		p.stress.stepLocked(SlotFreed)
		return
	}
	w := p.waiting.Remove(p.waiting.Front()).(*waiter)
	w.elem = nil
	w.timer.Stop()
	w.endWait()
	p.grantLocked(w.l, w.conn, w.ip, w.since, false)
}

// trackExempt records a connection of an exempt listener, which holds no slot.
func (p *slotPool) trackExempt(sc *slotConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[sc] = struct{}{}
	return true
}

func (p *slotPool) dropClientLocked(ip netip.Addr) {
	if p.perClient[ip]--; p.perClient[ip] <= 0 {
		delete(p.perClient, ip)
	}
}

// rejectLocked answers c with a 421 and closes it, off the caller's goroutine so that a client
// that does not read cannot stall the accept loop. Caller holds mu.
func (p *slotPool) rejectLocked(c net.Conn, format string) {
	p.tempfailed++
	p.srv.metrics.sessions.WithLabelValues(outcomeTempfailed).Inc()
	p.srv.metrics.rejectedCode(421)
	line := sprintfLine(format, p.cfg.Hostname)
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		rejectConn(c, line)
	}()
}

// rejectConn writes one reply line and closes c gracefully: half-close, drain briefly, close.
func rejectConn(c net.Conn, line string) {
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
	if _, err := io.WriteString(c, line); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(rejectLinger))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// startLinger counts a lingering close of c in bg and sets its deadline, unless the node is
// closing now: then there is no time to linger.
func (p *slotPool) startLinger(c *slotConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv.closingNow.Load() {
		return false
	}
	p.bg.Add(1)
	p.lingers[c] = struct{}{}
	// Under p.mu, so that cutLingers comes wholly before or after this deadline.
	c.mu.Lock()
	c.lingering, c.readShut, c.writeShut = true, true, true
	_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	c.mu.Unlock()
	return true
}

func (p *slotPool) endLinger(c *slotConn) {
	p.mu.Lock()
	delete(p.lingers, c)
	p.mu.Unlock()
	p.bg.Done()
}

// cutLingers ends every linger now: the node is closing without waiting.
func (p *slotPool) cutLingers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.lingers {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// close refuses new connections, answers every waiter with 421 and returns the live
// connections, so the caller can end them.
func (p *slotPool) close() []*slotConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		for e := p.waiting.Front(); e != nil; e = p.waiting.Front() {
			w := p.waiting.Remove(e).(*waiter)
			w.elem = nil
			w.timer.Stop()
			w.endWait()
			p.dropClientLocked(w.ip)
			p.rejectLocked(w.conn, replyShutdown)
		}
		p.stress.stopLocked()
	}
	return p.liveLocked()
}

func (p *slotPool) live() []*slotConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.liveLocked()
}

func (p *slotPool) liveLocked() []*slotConn {
	out := make([]*slotConn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

// remoteIP is the client's address, unmapped so that ::ffff:a.b.c.d and a.b.c.d count as one.
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// slotListener is the net.Listener go-smtp serves. Its own goroutine runs the inner accept loop
// and passes each connection to the pool; Accept returns only connections that hold a slot.
type slotListener struct {
	inner  net.Listener
	pool   *slotPool
	exempt bool
	proxy  bool // each connection starts with a PROXY protocol header
	ready  chan *slotConn

	closed    bool // under pool.mu: no more grants into ready
	once      sync.Once
	closeOnce sync.Once
	done      chan struct{}
	err       error // why the inner loop stopped; set before done is closed
	loop      sync.WaitGroup
}

func newSlotListener(inner net.Listener, p *slotPool, kind listenKind) *slotListener {
	exempt := kind == listenExempt
	l := &slotListener{inner: inner, pool: p, exempt: exempt, proxy: kind == listenProxy, done: make(chan struct{}),
		ready: make(chan *slotConn, p.cfg.Limit+1)}
	if !exempt {
		l.loop.Add(1)
		go l.acceptLoop()
	}
	return l
}

func (l *slotListener) acceptLoop() {
	defer l.loop.Done()
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of descriptors and similar: back off instead of spinning, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.pool.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.stop(err)
			return
		}
		delay = 0
		if l.proxy {
			l.pool.bg.Add(1)
			go l.pool.admitProxied(l, c)
			continue
		}
		l.pool.admit(l, c)
	}
}

// Accept returns the next connection that holds a slot; on an exempt listener, the next one.
func (l *slotListener) Accept() (net.Conn, error) {
	if l.exempt {
		return l.acceptExempt()
	}
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// acceptExempt serves a listener marked exempt (submission, trusted networks): its
// connections hold no slot and always run with normal settings.
func (l *slotListener) acceptExempt() (net.Conn, error) {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		sc := l.pool.srv.wrapConn(c, remoteIP(c), l.pool, false)
		sc.exempt = true
		if l.pool.trackExempt(sc) {
			return sc, nil
		}
		rejectConn(c, sprintfLine(replyShutdown, l.pool.cfg.Hostname))
	}
}

func (l *slotListener) stop(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

// Close stops the accept loop and closes the connections granted but not yet accepted. Only
// the first call does anything; go-smtp and the Server both close it.
func (l *slotListener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.close() })
	return err
}

func (l *slotListener) close() error {
	err := l.inner.Close()
	l.stop(net.ErrClosed)
	l.loop.Wait()

	// Mark closed under the pool's lock, so that no hand-over lands in ready after the drain.
	l.pool.mu.Lock()
	l.closed = true
	var stranded []*slotConn
	for len(l.ready) > 0 {
		stranded = append(stranded, <-l.ready)
	}
	l.pool.mu.Unlock()
	for _, c := range stranded {
		c.Close()
	}
	return err
}

func (l *slotListener) Addr() net.Addr { return l.inner.Addr() }
