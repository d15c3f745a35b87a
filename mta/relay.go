package mta

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// The outbound side: one SMTP transaction per message and next hop, over connections that are
// kept open and reused between messages.

// rcptResult is the outcome of one recipient in one attempt. Transient versus permanent is
// carried as data, from the reply code (RFC 5321 section 4.2.1).
type rcptResult struct {
	idx     int
	ok      bool
	temp    bool
	expired bool // a temporary failure past GiveUp
	hop     string
	code    int // 0 when there was no reply (connection failed)
	enh     smtp.EnhancedCode
	text    string
	// local: the attempt failed on this node (the spool could not be read), not at the hop.
	local bool
	tls   bool // the attempt ran inside STARTTLS
}

// Reuse limits for outbound connections.
const (
	hopIdleMax   = 30 * time.Second // well under any server's idle timeout (RFC 5321: 5 minutes)
	hopMaxUses   = 100              // the go-smtp client keeps every recipient of a connection
	hopIdleConns = 8                // per hop
)

// sendHop delivers q to the recipients idx through hop. A reused connection that fails before
// any reply is presumed closed by the server while idle, and the transaction is tried once
// more on a fresh one.
func (d *delivery) sendHop(hop string, q *queued, f *os.File, idx []int) []rcptResult {
	for try := 0; ; try++ {
		pc, err := d.hops.get(d.attempts, hop, d.srv.routing.Load().hopTLS[hop])
		if err != nil {
			return connResults(hop, idx, err)
		}
		stop := context.AfterFunc(d.attempts, func() { pc.conn.Close() })
		res, connOK, fresh := d.transact(pc, q, f, idx, hop)
		stop()
		for i := range res {
			res[i].tls = pc.tls
		}
		if connOK {
			d.hops.put(hop, pc)
			return res
		}
		pc.c.Close()
		if !fresh || !pc.reused || try > 0 {
			return res
		}
	}
}

// transact runs MAIL, RCPT and DATA. It reports whether the connection can be reused, and
// whether it failed before any reply (then a fresh connection may be tried).
func (d *delivery) transact(pc *hopClient, q *queued, f *os.File, idx []int, hop string) ([]rcptResult, bool, bool) {
	c := pc.c
	opts, ok := mailOptions(c, q)
	if !ok {
		return eightBitRefused(hop, idx), true, false
	}
	if err := c.Mail(q.env.From, opts); err != nil {
		r, ok := classify(err)
		return allResults(hop, idx, r.temp, r.code, r.enh, r.text), ok, r.code == 0
	}
	results := make([]rcptResult, 0, len(idx))
	var accepted []int
	for k, i := range idx {
		err := c.Rcpt(q.env.To[i], nil)
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		r, ok := classify(err)
		r.idx, r.hop = i, hop
		results = append(results, r)
		if !ok {
			// The connection is gone: the rest are deferred with the same reason.
			return append(results, allResults(hop, idx[k+1:], true, r.code, r.enh, r.text)...), false, false
		}
	}
	if len(accepted) == 0 {
		return results, c.Reset() == nil, false
	}
	res, ok := d.data(c, q, f, accepted, hop)
	return append(results, res...), ok, false
}

// data sends the message to the accepted recipients; the reply to the final dot is theirs.
func (d *delivery) data(c *smtp.Client, q *queued, f *os.File, accepted []int, hop string) ([]rcptResult, bool) {
	w, err := c.Data()
	if err != nil {
		r, ok := classify(err)
		return allResults(hop, accepted, r.temp, r.code, r.enh, r.text), ok
	}
	if _, err := io.Copy(w, messageReader(f, q)); err != nil {
		// No final dot: it would have the hop accept a truncated message. The caller drops the
		// connection instead, and RFC 5321 section 4.1.1.4 has the hop discard the transaction.
		if errors.Is(err, errSpoolRead) {
			d.srv.spoolReadFailed(q, err)
			return spoolResults(hop, accepted, err), false
		}
		return allResults(hop, accepted, true, 0, smtp.EnhancedCode{4, 4, 2}, "sending message failed: "+err.Error()), false
	}
	if err := w.Close(); err != nil {
		r, ok := classify(err)
		return allResults(hop, accepted, r.temp, r.code, r.enh, r.text), ok
	}
	return allResults(hop, accepted, false, 250, smtp.EnhancedCode{2, 0, 0}, "ok"), true
}

// spoolResults defers recipients because this node could not read the message (RFC 3463
// 4.3.0: other or undefined mail system status).
func spoolResults(hop string, idx []int, err error) []rcptResult {
	out := allResults(hop, idx, true, 0, smtp.EnhancedCode{4, 3, 0}, err.Error())
	for i := range out {
		out[i].local = true
	}
	return out
}

// classify turns a client error into a result and whether the connection is still usable.
// A reply is transient if it is 4xx; anything without a reply (I/O) is transient too.
func classify(err error) (rcptResult, bool) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		r := rcptResult{temp: se.Code/100 != 5, code: se.Code, enh: se.EnhancedCode, text: se.Message}
		if r.code/100 == 2 {
			r.ok, r.temp = true, false
		}
		// 421: the server is closing the connection (RFC 5321 section 3.8).
		return r, se.Code != 421
	}
	return rcptResult{temp: true, enh: smtp.EnhancedCode{4, 4, 2}, text: err.Error()}, false
}

func allResults(hop string, idx []int, temp bool, code int, enh smtp.EnhancedCode, text string) []rcptResult {
	out := make([]rcptResult, len(idx))
	for k, i := range idx {
		out[k] = rcptResult{idx: i, ok: code/100 == 2, temp: temp && code/100 != 2, hop: hop, code: code, enh: enh, text: text}
	}
	return out
}

// hopClient is an open connection to a next hop.
type hopClient struct {
	c      *smtp.Client
	conn   net.Conn
	uses   int
	last   time.Time
	reused bool
	tls    bool // STARTTLS is in effect
}

// hopPool keeps idle outbound connections per next hop.
type hopPool struct {
	cfg    Config
	dialer net.Dialer

	mu     sync.Mutex
	idle   map[string][]*hopClient
	closed bool
}

func newHopPool(cfg Config) *hopPool {
	return &hopPool{cfg: cfg, dialer: net.Dialer{Timeout: cfg.DeliveryTimeout}, idle: map[string][]*hopClient{}}
}

// get returns an idle connection to hop, or dials and greets a new one under pol. An idle
// connection was set up under the policy of its time; a reload reaches it within hopIdleMax.
func (p *hopPool) get(ctx context.Context, hop string, pol TLSPolicy) (*hopClient, error) {
	if pc := p.takeIdle(hop); pc != nil {
		return pc, nil
	}
	return p.dialHop(ctx, hop, pol)
}

func (p *hopPool) takeIdle(hop string) *hopClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.idle[hop]; len(list) > 0; list = p.idle[hop] {
		pc := list[len(list)-1]
		p.idle[hop] = list[:len(list)-1]
		if time.Since(pc.last) < hopIdleMax {
			pc.reused = true
			return pc
		}
		go pc.c.Close()
	}
	return nil
}

// put keeps pc for the next message, or ends it politely.
func (p *hopPool) put(hop string, pc *hopClient) {
	pc.uses++
	pc.last = time.Now()
	p.mu.Lock()
	keep := !p.closed && pc.uses < hopMaxUses && len(p.idle[hop]) < hopIdleConns
	if keep {
		p.idle[hop] = append(p.idle[hop], pc)
	}
	p.mu.Unlock()
	if !keep {
		quit(pc)
	}
}

func (p *hopPool) closeAll() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = map[string][]*hopClient{}
	p.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			quit(pc)
		}
	}
}

// quit sends QUIT with a short deadline and closes.
func quit(pc *hopClient) {
	pc.c.CommandTimeout = 2 * time.Second
	if err := pc.c.Quit(); err != nil {
		pc.c.Close()
	}
}
