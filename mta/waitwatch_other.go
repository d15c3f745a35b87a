//go:build !unix

package mta

import "net"

// peerGone is not implemented here: a waiter that hangs up is noticed when its wait ends.
//
// TODO: a zero-byte overlapped read would tell on Windows.
func peerGone(net.Conn) bool { return false }
