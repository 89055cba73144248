//go:build !linux

package originaldst

import (
	"errors"
	"net/netip"
	"syscall"
)

// originalDst needs Linux connection tracking; elsewhere the connection
// keeps its address.
func originalDst(syscall.RawConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("original_dst: only supported on Linux")
}
