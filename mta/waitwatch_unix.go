//go:build unix

package mta

import (
	"errors"
	"net"
	"syscall"
)

// peerGone blocks until c is readable and reports whether that is because the client closed or
// reset it, looking without consuming (MSG_PEEK), so that bytes a client sends before its
// greeting stay for the session. It returns false when bytes are waiting, or when the watch is
// cut short by a read deadline (the waiter got its slot or its 421).
func peerGone(c net.Conn) bool {
	rc, ok := rawSocket(c)
	if !ok {
		return false
	}
	var gone bool
	var buf [1]byte
	err := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			return false // nothing yet: wait for the socket to be readable
		case err != nil, n == 0:
			gone = true // reset, or an orderly close (EOF)
		}
		return true
	})
	return err == nil && gone
}

// rawSocket is the socket under a waiter's connection, a balancer's PROXY wrapper taken off.
func rawSocket(c net.Conn) (syscall.RawConn, bool) {
	if p, ok := c.(*proxiedConn); ok {
		c = p.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	return rc, err == nil
}
