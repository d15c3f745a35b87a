package mta

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"time"
)

// A listener that enables the PROXY protocol sits behind a load balancer: only the balancer
// (Config.ProxyFrom) may connect, and each of its connections starts with a header naming the
// real client. That address is the connection's from then on: the per-client cap, rate
// limits, relay_networks, logs and Received: all see it.

// proxyHeaderTimeout bounds the wait for the header. Postfix's postscreen_upstream_proxy_timeout
// is the same 5 s; a balancer sends the header at once.
const proxyHeaderTimeout = 5 * time.Second

// proxiedConn is a balancer's connection with the client's address in place of its own.
type proxiedConn struct {
	net.Conn
	r      io.Reader // what the header reader had buffered beyond the header, then the connection
	remote net.Addr
}

func (c *proxiedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
func (c *proxiedConn) RemoteAddr() net.Addr       { return c.remote }

// CloseWrite keeps the half-close that 421 replies rely on.
func (c *proxiedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// admitProxied reads the PROXY header of c, on its own goroutine so that a balancer slow to
// send it never holds up the accept loop, and then hands the connection to the slot pool
// under the client's address. A connection from outside ProxyFrom, or without a valid header,
// is closed without a reply: a reply would reach the balancer, not a client.
func (p *slotPool) admitProxied(l *slotListener, c net.Conn) {
	defer p.bg.Done()
	peer := remoteIP(c)
	if !inPrefixes(peer, p.cfg.ProxyFrom) {
		p.refuseProxied(c, peer, "PROXY listener: connection not from a configured balancer (proxy_from)")
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	// A listener closing (Shutdown) cuts the wait short instead of letting it run out.
	read := make(chan struct{})
	go func() {
		select {
		case <-l.done:
			_ = c.SetReadDeadline(time.Now())
		case <-read:
		}
	}()
	br := bufio.NewReaderSize(c, proxyBufSize)
	h, err := readProxyHeader(br)
	close(read)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		p.refuseProxied(c, peer, "PROXY header refused: "+err.Error())
		return
	}
	pc := &proxiedConn{Conn: c, r: io.MultiReader(io.LimitReader(br, int64(br.Buffered())), c), remote: c.RemoteAddr()}
	if !h.local {
		pc.remote = net.TCPAddrFromAddrPort(h.src)
	}
	p.admit(l, pc)
}

// refuseProxied closes c and says why in the log; it counts as a rejected session.
func (p *slotPool) refuseProxied(c net.Conn, peer netip.Addr, why string) {
	p.log.Warn("connection refused", "peer", peer.String(), "reason", why)
	p.srv.metrics.sessions.WithLabelValues(outcomeRejected).Inc()
	p.srv.sessionsRejected.Add(1)
	c.Close()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ServeProxy serves l, a listener behind a load balancer that speaks the PROXY protocol (v1 or
// v2), with slots like Serve. Only Config.ProxyFrom may connect.
func (s *Server) ServeProxy(l net.Listener) error { return s.serveKind(l, listenProxy) }
