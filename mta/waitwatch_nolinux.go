//go:build !linux

package mta

import "net"

// peerClosed is not implemented here: a waiter that talked before hanging up is noticed when
// its wait ends. TODO: the BSDs' TCP_INFO or TCP_CONNECTION_INFO would tell.
func peerClosed(net.Conn) bool { return false }

const canWatchTalkers = false
