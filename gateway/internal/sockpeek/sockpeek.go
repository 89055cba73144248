// Package sockpeek looks at a connection's receive side without reading
// from it or waiting: whether bytes wait there, the peer closed (or reset)
// the connection, or nothing happened. The upstream pool uses it to drop
// idle connections the upstream closed, the statsd TCP sink to notice a
// server that let go of its connection.
package sockpeek

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// State is what a peek found.
type State uint8

const (
	// Empty: nothing to read and the connection is open (or c is not a
	// socket sockpeek can look at).
	Empty State = iota
	// Data: bytes are waiting.
	Data
	// Closed: the peer closed or reset the connection.
	Closed
)

// Peek reports c's state with one non-blocking MSG_PEEK recv. It is safe to
// call from any goroutine that does not read c at the same time.
func Peek(c net.Conn) State {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Empty
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Closed
	}
	st := Empty
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case rerr == unix.EAGAIN || rerr == unix.EINTR:
		case rerr != nil || n == 0:
			st = Closed
		default:
			st = Data
		}
		return true // never wait for readability
	})
	if err != nil {
		return Closed
	}
	return st
}

// Gone reports whether the peer of c closed or reset the connection, also
// behind bytes it sent before that wait unread: the socket has received
// the peer's FIN (TCP state CLOSE_WAIT; a TLS client sends close_notify
// first) or is closed, or a peek finds the end of the stream or an error.
// Unlike Peek it takes no read lock of c, so it may run while another
// goroutine waits in a read of c; it reports false where it cannot look.
func Gone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = rc.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && ti.State != tcpEstablished {
			gone = true
			return
		}
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
	})
	return gone
}

// tcpEstablished is TCP_ESTABLISHED, tcp_info's state of a connection
// that neither side has closed (linux/tcp_states.h).
const tcpEstablished = 1

// Peeker is Peek for one connection, set up once so that its peeks
// allocate nothing (for a check on every use of a pooled connection).
// Like Peek, it must not run while another goroutine reads the connection,
// nor two peeks of one Peeker at once.
type Peeker struct {
	rc syscall.RawConn // nil: not a socket Peeker can look at
	fn func(fd uintptr) bool
	st State
	b  [1]byte
}

// NewPeeker returns a Peeker of c.
func NewPeeker(c net.Conn) *Peeker {
	p := &Peeker{}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = p.step
	return p
}

// step is the RawConn.Read callback: one recvfrom(MSG_PEEK|MSG_DONTWAIT),
// never waiting. A raw system call: it cannot block.
func (p *Peeker) step(fd uintptr) bool {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		p.st = Empty
	case errno != 0 || n == 0:
		p.st = Closed
	default:
		p.st = Data
	}
	return true
}

// Peek reports the connection's state as the package's Peek does.
func (p *Peeker) Peek() State {
	if p.rc == nil {
		return Empty
	}
	if err := p.rc.Read(p.fn); err != nil {
		return Closed
	}
	return p.st
}
