package quicroute

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// A forwarded datagram travels in one unix datagram:
//
//	byte 0        frameVersion
//	byte 1        address length (4 or 16)
//	next 4 or 16  client IP
//	next 2        client port, big endian
//	next 2        length of the control messages, big endian
//	next n        the control messages read with the datagram (ECN, packet
//	              info; the receiver's socket has the same options set)
//	rest          the datagram
const frameVersion = 1

// maxFrame bounds a frame: a full UDP payload and its control messages.
const maxFrame = 64 << 10

// appendFrame appends the frame of datagram p from addr with control
// messages oob to b.
func appendFrame(b []byte, addr netip.AddrPort, oob, p []byte) []byte {
	ip := addr.Addr().Unmap()
	b = append(b, frameVersion, byte(ip.BitLen()/8))
	b = append(b, ip.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, addr.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(len(oob)))
	b = append(b, oob...)
	return append(b, p...)
}

// parseFrame splits a frame; ok is false for anything malformed.
func parseFrame(f []byte) (addr netip.AddrPort, oob, p []byte, ok bool) {
	if len(f) < 2 || f[0] != frameVersion {
		return addr, nil, nil, false
	}
	n := int(f[1])
	if n != 4 && n != 16 {
		return addr, nil, nil, false
	}
	f = f[2:]
	if len(f) < n+4 {
		return addr, nil, nil, false
	}
	ip, _ := netip.AddrFromSlice(f[:n])
	port := binary.BigEndian.Uint16(f[n:])
	on := int(binary.BigEndian.Uint16(f[n+2:]))
	f = f[n+4:]
	if len(f) < on {
		return addr, nil, nil, false
	}
	return netip.AddrPortFrom(ip, port), f[:on], f[on:], true
}

// udpAddrPort returns the address of a received datagram.
func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}
