// Package writeread writes a message and reads the answer as one step on a
// plain TCP connection.
//
// After a proxy writes a request upstream, or a response downstream, the
// next bytes on that connection cannot be there yet; net.Conn.Read would
// still try read(2) first, fail with EAGAIN, and only then park the
// goroutine on the netpoller. Conn.WriteRead writes from inside
// syscall.RawConn.Read and then waits for readability before its first
// read(2): one failed system call fewer per exchange. Writing inside
// RawConn.Read, after it reset the descriptor's readiness, is what makes
// skipping the read safe: an answer that arrives after the write always
// wakes the wait, and the read deadline and a close end it as they end a
// Read.
//
// The wait is only woken by bytes that arrive after WriteRead started: it
// is for an answer the write causes (a response to a request, the next
// request of a client that waits for its response). Bytes the peer sent
// earlier without being asked wait for the next arrival, a close or the
// deadline; a peer that closes its side in the meantime still resets the
// connection when the write reaches it.
package writeread

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is one TCP connection's write-then-read path. It is used by one
// goroutine at a time, the one that also reads the connection.
type Conn struct {
	nc net.Conn
	rc syscall.RawConn
	fn func(fd uintptr) bool

	// State of one WriteRead call:
	w     []byte // to write; nil once written (or found unwritable)
	rest  []byte // what a write that hit EAGAIN left, for a blocking Write
	wfail error  // a write error other than EAGAIN
	p     []byte
	n     int
	rerr  error
}

// New returns nc's write-then-read path, or nil when nc is not a plain TCP
// connection (TLS, a peeking reader or a filter must see every byte).
func New(nc net.Conn) *Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{nc: nc, rc: rc}
	c.fn = c.step
	return c
}

// WriteRead writes all of b, then reads into p (len(p) > 0) as
// net.Conn.Read does, under the connection's read deadline. If the write
// fails, werr is its error and nothing was read (n == 0, rerr == nil).
// When the read deadline has already passed or the connection is closed
// before b was written, b is written by a blocking Write (under the write
// deadline) and rerr is the read's error.
func (c *Conn) WriteRead(b, p []byte) (n int, rerr, werr error) {
	if len(b) == 0 {
		n, rerr = c.nc.Read(p)
		return n, rerr, nil
	}
	c.w, c.rest, c.wfail, c.p, c.n, c.rerr = b, nil, nil, p, 0, nil
	err := c.rc.Read(c.fn)
	w, rest, wfail := c.w, c.rest, c.wfail
	n, rerr = c.n, c.rerr
	c.w, c.rest, c.wfail, c.p, c.rerr = nil, nil, nil, nil, nil
	switch {
	case w != nil: // the deadline or a close came first: write anyway
		if _, werr = c.nc.Write(w); werr != nil {
			return 0, nil, werr
		}
		return 0, err, nil
	case wfail != nil:
		return 0, nil, c.opError("write", wfail)
	case rest != nil:
		if _, werr = c.nc.Write(rest); werr != nil {
			return 0, nil, werr
		}
		n, rerr = c.nc.Read(p)
		return n, rerr, nil
	case err != nil: // written; the wait ended by the deadline or a close
		return 0, err, nil
	}
	return n, rerr, nil
}

// step is the RawConn.Read callback: the first call writes, the next ones
// read; false waits for readability.
func (c *Conn) step(fd uintptr) bool {
	if b := c.w; b != nil {
		c.w = nil
		for len(b) > 0 {
			n, err := rawWrite(fd, b)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				c.rest = b
				return true
			case err != nil:
				c.wfail = err
				return true
			}
			b = b[n:]
		}
		return false // written: wait for the answer
	}
	for {
		n, err := rawRead(fd, c.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.n, c.rerr = 0, c.opError("read", err)
		case n == 0:
			c.n, c.rerr = 0, io.EOF
		default:
			c.n = n
		}
		return true
	}
}

// opError wraps a system call error as net.Conn's methods do.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.nc.LocalAddr(), Addr: c.nc.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}

// TryRead reads what is there into p without waiting and whatever the read
// deadline, for a WriteRead that timed out: bytes that arrived before it
// started did not end its wait. It returns 0 when nothing was read (no
// bytes, end of stream or an error; the next read reports those).
func (c *Conn) TryRead(p []byte) int {
	n := 0
	_ = c.rc.Control(func(fd uintptr) {
		for {
			m, err := rawRead(fd, p)
			if err == syscall.EINTR {
				continue
			}
			if err == nil && m > 0 {
				n = m
			}
			return
		}
	})
	return n
}

// rawWrite and rawRead are sendto(2) and recvfrom(2) without an address,
// as raw system calls.
//
// Raw: the descriptor is non-blocking (the netpoller does every wait), so
// the call cannot block, and the scheduler's bookkeeping of a system call
// that might (entersyscall and exitsyscall) is spent for nothing: about
// 0.15 µs per proxied HTTP/1.1 request, which makes four of these calls, in
// a CPU profile of a worker under wrk (docs/benchmarks.md).
//
// sendto and recvfrom rather than write and read: the socket calls go to
// the socket layer directly, where write(2) and read(2) pass through the
// file layer first (the position lock's descriptor lookup, the permission
// hook, an iov_iter set up for a file, the fsnotify hooks). About 0.3 µs
// per proxied request, four calls, in alternating runs (docs/benchmarks.md).
func rawWrite(fd uintptr, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawRead(fd uintptr, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
