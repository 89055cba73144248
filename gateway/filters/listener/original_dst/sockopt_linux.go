package originaldst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/
// ip6_tables.h (x/sys/unix does not name it); it equals SO_ORIGINAL_DST.
const ip6tSOOriginalDst = 80

// originalDst asks the kernel for the socket's destination before NAT:
// SOL_IP/SO_ORIGINAL_DST on an IPv4 socket or an IPv4-mapped address of an
// IPv6 socket, SOL_IPV6/IP6T_SO_ORIGINAL_DST on an IPv6 one.
func originalDst(rc syscall.RawConn) (netip.AddrPort, error) {
	var (
		dst  netip.AddrPort
		oerr error
	)
	err := rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			oerr = err
			return
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			dst, oerr = getOriginalDst(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		case *unix.SockaddrInet6:
			if netip.AddrFrom16(a.Addr).Is4In6() {
				dst, oerr = getOriginalDst(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			} else {
				dst, oerr = getOriginalDst(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
			}
		default:
			oerr = errors.New("original_dst: not an IP socket")
		}
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original_dst: %w", err)
	}
	return dst, oerr
}

// getOriginalDst reads a sockaddr_in or sockaddr_in6 option value.
func getOriginalDst(fd, level, opt int) (netip.AddrPort, error) {
	var buf [unix.SizeofSockaddrInet6]byte
	l := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return netip.AddrPort{}, fmt.Errorf("original_dst: getsockopt: %w", errno)
	}
	return decodeSockaddr(buf[:min(int(l), len(buf))])
}

// decodeSockaddr decodes a sockaddr_in or sockaddr_in6 as the kernel
// writes it: family in host order, port in network order.
func decodeSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 4 {
		return netip.AddrPort{}, errors.New("original_dst: short address")
	}
	family := binary.NativeEndian.Uint16(b[0:2])
	port := binary.BigEndian.Uint16(b[2:4])
	switch {
	case family == unix.AF_INET && len(b) >= 8:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
	case family == unix.AF_INET6 && len(b) >= 24:
		// sockaddr_in6: family, port, flowinfo (4), addr (16), scope id
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("original_dst: unexpected address family %d", family)
}
