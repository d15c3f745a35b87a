//go:build linux

package mta

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerClosed reports whether the client has closed its side or reset the connection, from the
// kernel's TCP state, without reading: for a waiter whose early bytes wait unread, so that
// MSG_PEEK cannot see an end behind them.
func peerClosed(c net.Conn) bool {
	rc, ok := rawSocket(c)
	if !ok {
		return false
	}
	var state uint8
	if rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = info.State
		}
	}) != nil {
		return false
	}
	// CLOSE_WAIT: the client sent its FIN; CLOSE: a reset.
	return state == unix.BPF_TCP_CLOSE_WAIT || state == unix.BPF_TCP_CLOSE
}

// canWatchTalkers: peerClosed works here.
const canWatchTalkers = true
