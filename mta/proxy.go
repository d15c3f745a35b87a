package mta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The PROXY protocol, versions 1 and 2, as HAProxy's specification (proxy-protocol.txt)
// defines them: the balancer's first bytes on a connection name the client it stands for.
// Only the header is read here; what follows belongs to the SMTP session.

// errNoProxyHeader: the connection did not start with either version's signature.
var errNoProxyHeader = errors.New("no PROXY protocol header")

// proxyHeader is what a header says. Local: the balancer speaks for itself (v2 LOCAL, v1
// UNKNOWN, or an address family without addresses), so the connection's own address holds.
type proxyHeader struct {
	src, dst netip.AddrPort
	local    bool
}

// proxyV2Sig is the 12-byte signature of version 2 (section 2.2).
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	proxyV1Max     = 107  // section 2.1: the longest v1 line, CRLF included
	proxyV2MaxBody = 1024 // addresses (at most 216 bytes for AF_UNIX) plus TLVs we skip
	proxyBufSize   = 16 + proxyV2MaxBody
)

// readProxyHeader reads one header from r, which must buffer at least proxyBufSize bytes, and
// consumes exactly the header.
func readProxyHeader(r *bufio.Reader) (proxyHeader, error) {
	sig, err := r.Peek(len(proxyV2Sig))
	if err != nil && !bytes.HasPrefix(sig, []byte("PROXY ")) {
		return proxyHeader{}, fmt.Errorf("%w: %v", errNoProxyHeader, err)
	}
	switch {
	case bytes.Equal(sig, proxyV2Sig):
		return readProxyV2(r)
	case bytes.HasPrefix(sig, []byte("PROXY ")):
		return readProxyV1(r)
	}
	return proxyHeader{}, errNoProxyHeader
}

// readProxyV1 reads "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n".
func readProxyV1(r *bufio.Reader) (proxyHeader, error) {
	line, err := r.ReadSlice('\n')
	if len(line) > proxyV1Max || errors.Is(err, bufio.ErrBufferFull) {
		return proxyHeader{}, errors.New("PROXY v1 line over 107 bytes")
	}
	if err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v1 line: %v", err)
	}
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return proxyHeader{}, errors.New("PROXY v1 line does not end in CRLF")
	}
	return parseProxyV1(string(body))
}

func parseProxyV1(line string) (proxyHeader, error) {
	f := strings.Split(line, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		// Section 2.1: the receiver ignores the rest and uses the connection's own address.
		return proxyHeader{local: true}, nil
	}
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6") {
		return proxyHeader{}, fmt.Errorf("PROXY v1 line %q is not PROXY TCP4|TCP6 src dst sport dport", line)
	}
	src, err1 := proxyV1Addr(f[2], f[4], f[1] == "TCP6")
	dst, err2 := proxyV1Addr(f[3], f[5], f[1] == "TCP6")
	if err := errors.Join(err1, err2); err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v1: %v", err)
	}
	return proxyHeader{src: src, dst: dst}, nil
}

func proxyV1Addr(ip, port string, six bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is6() != six || (six && a.Is4In6()) {
		return netip.AddrPort{}, fmt.Errorf("address %q does not fit the protocol", ip)
	}
	// Ports are plain decimal: no sign, no leading zero (strconv would take "+25" and "025").
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || port[0] == '+' || (len(port) > 1 && port[0] == '0') {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// readProxyV2 reads the binary header: signature, version and command, family and protocol,
// the length of the rest, then addresses and TLVs (section 2.2).
func readProxyV2(r *bufio.Reader) (proxyHeader, error) {
	head, err := r.Peek(16)
	if err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v2 header: %v", err)
	}
	verCmd, famProto := head[12], head[13]
	n := int(binary.BigEndian.Uint16(head[14:16]))
	if verCmd>>4 != 2 {
		return proxyHeader{}, fmt.Errorf("PROXY v2: version %d", verCmd>>4)
	}
	if n > proxyV2MaxBody {
		return proxyHeader{}, fmt.Errorf("PROXY v2: %d bytes of addresses and TLVs, over %d", n, proxyV2MaxBody)
	}
	all, err := r.Peek(16 + n)
	if err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v2 addresses: %v", err)
	}
	h, err := parseProxyV2(verCmd&0xf, famProto, all[16:])
	if err != nil {
		return proxyHeader{}, err
	}
	_, _ = r.Discard(16 + n)
	return h, nil
}

func parseProxyV2(cmd, famProto byte, body []byte) (proxyHeader, error) {
	switch cmd {
	case 0x0: // LOCAL: health checks and the balancer's own connections
		return proxyHeader{local: true}, nil
	case 0x1: // PROXY
	default:
		return proxyHeader{}, fmt.Errorf("PROXY v2: unknown command %#x", cmd)
	}
	var size int
	switch famProto {
	case 0x00: // UNSPEC: the sender could not tell; the connection's address holds
		return proxyHeader{local: true}, nil
	case 0x11: // TCP over IPv4
		size = 12
	case 0x21: // TCP over IPv6
		size = 36
	default: // UDP and UNIX sockets carry no SMTP client address
		return proxyHeader{}, fmt.Errorf("PROXY v2: family and protocol %#x is not TCP", famProto)
	}
	if len(body) < size {
		return proxyHeader{}, fmt.Errorf("PROXY v2: %d bytes of addresses, want %d", len(body), size)
	}
	alen := (size - 4) / 2
	src, _ := netip.AddrFromSlice(body[:alen])
	dst, _ := netip.AddrFromSlice(body[alen : 2*alen])
	sport := binary.BigEndian.Uint16(body[2*alen:])
	dport := binary.BigEndian.Uint16(body[2*alen+2:])
	return proxyHeader{src: netip.AddrPortFrom(src.Unmap(), sport), dst: netip.AddrPortFrom(dst.Unmap(), dport)}, nil
}
