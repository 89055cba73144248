package originaldst

import (
	"syscall"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// filter reads the original destination. It is stateless, so one value
// serves every connection; OnAccept runs on the connection's goroutine.
type filter struct{}

// OnAccept implements netfilter.ListenerFilter. The listener's callbacks
// give the filter the accepted socket through syscall.Conn. When the
// kernel knows an original destination other than the socket's address, it
// replaces Info.LocalAddr and sets Info.LocalAddrRestored; when it
// does not (no connection tracking entry, no socket, a Unix socket), the
// connection keeps its address, as in Envoy. The filter never closes a
// connection and never reads from it.
func (filter) OnAccept(cb netfilter.ListenerCallbacks) netfilter.Status {
	sc, ok := cb.(syscall.Conn)
	if !ok {
		return netfilter.Continue
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netfilter.Continue
	}
	if dst, err := originalDst(rc); err == nil && dst.IsValid() {
		info := cb.Info()
		// A connection made to the listener's own address (conntrack knows
		// every connection) keeps it unrestored: forwarding it to its
		// "original" destination would loop back here.
		if dst != info.LocalAddr {
			info.LocalAddr, info.LocalAddrRestored = dst, true
		}
	}
	return netfilter.Continue
}
