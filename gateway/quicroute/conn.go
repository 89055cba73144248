package quicroute

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// sendWait is how long a forward waits for room in the owner's queue;
// an owner whose queue stays full gets datagrams without waiting (dropped
// when full) for stuckFor.
const (
	sendWait = 2 * time.Millisecond
	stuckFor = 100 * time.Millisecond
)

// inboxLen bounds the datagrams forwarded to a worker and not yet read by
// its transport; more are dropped (QUIC retransmits).
const inboxLen = 1024

// Conn is the PacketConn a worker's quic.Transport reads from. It wraps
// the worker's UDP socket, forwards the datagrams that belong to another
// worker (Decide) and delivers the datagrams other workers forward to it.
// It keeps what quic-go gets from a *net.UDPConn: it is an
// OOBCapablePacketConn and reads in batches (ReadBatch), so ECN, packet
// info and GSO stay on. Only one goroutine may read (quic-go's); writes
// and deadlines are safe from any goroutine.
type Conn struct {
	udp   *net.UDPConn
	batch *ipv4.PacketConn
	self  Owner
	group string // hash of the socket's address, part of every worker's name
	log   *zap.Logger

	successor atomic.Int64

	in      *net.UnixConn // bound to name(group, self); nil if binding failed
	outFD   int           // unbound unix datagram socket for forwarding
	sendMu  sync.Mutex
	sendBuf []byte
	stuck   map[Owner]time.Time // owners whose queue stayed full, until when

	inbox chan *[]byte
	bufs  sync.Pool

	dlMu       sync.Mutex
	dl         time.Time // the reader's deadline as set by SetReadDeadline
	closed     chan struct{}
	closeOnce  sync.Once
	readerDone chan struct{}

	stats Stats
}

// Stats counts a Conn's routing.
type Stats struct {
	// Forwarded counts datagrams sent to another worker; ForwardFailed
	// those that could not be (the owner is gone: delivered locally), and
	// ForwardDropped those dropped because the owner's queue was full.
	Forwarded, ForwardFailed, ForwardDropped atomic.Uint64
	// Received counts datagrams forwarded to this worker; Rejected those
	// refused (malformed, or from a process of another user).
	Received, Rejected atomic.Uint64
}

// New wraps udp, the UDP socket of the worker self, and binds the
// worker's forwarding socket. It takes ownership of udp. A worker that
// cannot bind its name (another process holds it) serves anyway, without
// receiving forwarded datagrams; that is logged.
func New(udp *net.UDPConn, self Owner, log *zap.Logger) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		// A full receive queue (net.unix.max_dgram_qlen datagrams, 10 by
		// default) blocks a send this long before it fails.
		tv := unix.NsecToTimeval(sendWait.Nanoseconds())
		if err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("quicroute: forwarding socket: %w", err)
	}
	c := &Conn{
		udp: udp, batch: ipv4.NewPacketConn(udp), self: self, log: log,
		group: groupName(udp.LocalAddr()), outFD: fd,
		inbox: make(chan *[]byte, inboxLen), stuck: map[Owner]time.Time{}, closed: make(chan struct{}), readerDone: make(chan struct{}),
	}
	c.bufs.New = func() any { b := make([]byte, maxFrame); return &b }
	c.successor.Store(-1)
	in, err := listen(c.name(self))
	if err != nil {
		log.Warn("cannot receive forwarded QUIC packets", zap.String("address", udp.LocalAddr().String()), zap.Error(err))
		close(c.readerDone)
	} else {
		c.in = in
		go c.receive()
	}
	return c, nil
}

// groupName identifies the socket group by the address it is bound to:
// every worker of every generation of one sluice shares it, and the
// sockets of another instance cannot.
func groupName(a net.Addr) string {
	h := fnv.New64a()
	h.Write([]byte(a.String()))
	return fmt.Sprintf("%016x", h.Sum64())
}

// name is the abstract unix socket address of worker o.
func (c *Conn) name(o Owner) string {
	return fmt.Sprintf("@sluice/quic/%s/%d/%d", c.group, o.Generation, o.Slot)
}

// listen binds the abstract unix datagram socket name, with SO_PASSCRED
// so that every datagram carries its sender's credentials.
func listen(name string) (*net.UnixConn, error) {
	in, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("quicroute: %w", err)
	}
	rc, err := in.SyscallConn()
	if err == nil {
		var serr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
			if serr == nil {
				// Best effort: room for bursts of forwarded packets.
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			}
		})
		if err == nil {
			err = serr
		}
	}
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("quicroute: SO_PASSCRED: %w", err)
	}
	return in, nil
}

// SetSuccessor tells a worker the generation that replaces its own:
// packets opening new connections go to that generation's worker of the
// same slot from now on, whenever it exists (until then they stay here).
// gen <= 0 withdraws it.
func (c *Conn) SetSuccessor(gen int) {
	if gen <= 0 {
		c.successor.Store(-1)
		return
	}
	c.successor.Store(int64(uint32(gen) & genMask))
}

// ConnectionIDGenerator returns the generator of the connection ids of
// the worker, for its quic.Transport: ids that route to it.
func (c *Conn) ConnectionIDGenerator() quic.ConnectionIDGenerator { return NewGenerator(c.self) }

// Stats returns the Conn's counters.
func (c *Conn) Stats() *Stats { return &c.stats }

// receive reads forwarded datagrams into the inbox until the Conn closes.
func (c *Conn) receive() {
	defer close(c.readerDone)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	uid := uint32(os.Geteuid())
	for {
		bp := c.bufs.Get().(*[]byte)
		b := (*bp)[:cap(*bp)]
		n, oobn, _, _, err := c.in.ReadMsgUnix(b, oob)
		if err != nil {
			c.bufs.Put(bp)
			select {
			case <-c.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("reading forwarded QUIC packets", zap.Error(err))
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		if !fromUser(oob[:oobn], uid) {
			c.stats.Rejected.Add(1)
			c.bufs.Put(bp)
			continue
		}
		*bp = b[:n]
		select {
		case c.inbox <- bp:
			c.stats.Received.Add(1)
			c.wake()
		default:
			c.stats.ForwardDropped.Add(1)
			c.bufs.Put(bp)
		}
	}
}

// fromUser reports whether the credentials in oob are of user uid.
func fromUser(oob []byte, uid uint32) bool {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for i := range msgs {
		if cred, err := unix.ParseUnixCredentials(&msgs[i]); err == nil {
			return cred.Uid == uid
		}
	}
	return false
}

// longAgo is a deadline in the past: it wakes a blocked read.
var longAgo = time.Unix(1, 0)

// wake interrupts the reader's wait on the UDP socket so that it takes the
// inbox.
func (c *Conn) wake() {
	c.dlMu.Lock()
	c.udp.SetReadDeadline(longAgo)
	c.dlMu.Unlock()
}

// arm restores the reader's own deadline on the UDP socket.
func (c *Conn) arm() {
	c.dlMu.Lock()
	c.udp.SetReadDeadline(c.dl)
	c.dlMu.Unlock()
}

// deadlinePassed reports whether the reader's own deadline has passed.
func (c *Conn) deadlinePassed() bool {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	return !c.dl.IsZero() && !time.Now().Before(c.dl)
}

// ReadBatch reads datagrams into ms, as ipv4.PacketConn.ReadBatch does:
// those forwarded to this worker first, then from the UDP socket, less
// those it forwards. It returns at least one datagram or an error.
func (c *Conn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	for {
		if n := c.takeInbox(ms); n > 0 {
			return n, nil
		}
		c.arm()
		// A datagram queued before arm may have had its wake-up undone.
		if n := c.takeInbox(ms); n > 0 {
			return n, nil
		}
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !c.deadlinePassed() {
				continue // woken for the inbox
			}
			return 0, err
		}
		if n = c.route(ms[:n]); n > 0 {
			return n, nil
		}
	}
}

// takeInbox moves forwarded datagrams from the inbox into ms, routing
// each (a draining worker passes new connections on) and returns how many
// it delivered.
func (c *Conn) takeInbox(ms []ipv4.Message) int {
	n := 0
	for n < len(ms) {
		var bp *[]byte
		select {
		case bp = <-c.inbox:
		default:
			return n
		}
		addr, oob, p, ok := parseFrame(*bp)
		m := &ms[n]
		switch {
		case !ok || len(m.Buffers) == 0 || len(p) > len(m.Buffers[0]):
			c.stats.Rejected.Add(1)
		case c.forward(Decide(c.self, c.successor.Load(), p, true), addr, oob, p):
		default:
			m.N = copy(m.Buffers[0], p)
			m.NN = 0
			if len(oob) <= len(m.OOB) {
				m.NN = copy(m.OOB, oob)
			}
			m.Flags = 0
			m.Addr = &net.UDPAddr{IP: addr.Addr().AsSlice(), Port: int(addr.Port())}
			n++
		}
		c.bufs.Put(bp)
	}
	return n
}

// route forwards what belongs elsewhere among the datagrams in ms, moves
// the others to the front and returns their number.
func (c *Conn) route(ms []ipv4.Message) int {
	succ := c.successor.Load()
	kept := 0
	for i := range ms {
		m := &ms[i]
		if len(m.Buffers) == 0 || m.N > len(m.Buffers[0]) {
			continue
		}
		p := m.Buffers[0][:m.N]
		if r := Decide(c.self, succ, p, false); r.Forward {
			if addr, ok := udpAddrPort(m.Addr); ok && c.forward(r, addr, m.OOB[:m.NN], p) {
				continue
			}
		}
		if kept != i {
			// Copy, never swap buffers: quic-go pairs each message's
			// buffer with its own bookkeeping by index.
			k := &ms[kept]
			k.N = copy(k.Buffers[0], p)
			k.NN = copy(k.OOB, m.OOB[:m.NN])
			k.Addr, k.Flags = m.Addr, m.Flags
		}
		kept++
	}
	return kept
}

// forward sends datagram p to the worker r names and reports whether it
// is taken care of: sent, or dropped because the owner's queue is full.
// When the owner does not exist (it exited) p stays here.
func (c *Conn) forward(r Route, addr netip.AddrPort, oob, p []byte) bool {
	if !r.Forward {
		return false
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.sendBuf = appendFrame(c.sendBuf[:0], addr, oob, p)
	flags := 0
	if until, ok := c.stuck[r.To]; ok {
		if time.Now().Before(until) {
			flags = unix.MSG_DONTWAIT
		} else {
			delete(c.stuck, r.To)
		}
	}
	err := unix.Sendto(c.outFD, c.sendBuf, flags, &unix.SockaddrUnix{Name: c.name(r.To)})
	for errors.Is(err, unix.EINTR) {
		err = unix.Sendto(c.outFD, c.sendBuf, flags, &unix.SockaddrUnix{Name: c.name(r.To)})
	}
	switch {
	case err == nil:
		c.stats.Forwarded.Add(1)
		return true
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS):
		if flags == 0 {
			c.stuck[r.To] = time.Now().Add(stuckFor)
		}
		c.stats.ForwardDropped.Add(1)
		return true
	default: // ECONNREFUSED: nobody has the name
		c.stats.ForwardFailed.Add(1)
		return false
	}
}

// ReadFrom reads one datagram (see ReadBatch).
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, _, _, addr, err := c.ReadMsgUDP(b, nil)
	if addr == nil {
		return n, nil, err
	}
	return n, addr, err
}

// ReadMsgUDP reads one datagram and its control messages (see ReadBatch).
func (c *Conn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	ms := []ipv4.Message{{Buffers: [][]byte{b}, OOB: oob}}
	if _, err := c.ReadBatch(ms, 0); err != nil {
		return 0, 0, 0, nil, err
	}
	addr, _ = ms[0].Addr.(*net.UDPAddr)
	return ms[0].N, ms[0].NN, ms[0].Flags, addr, nil
}

// WriteTo writes a datagram on the UDP socket.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.udp.WriteTo(b, addr) }

// WriteMsgUDP writes a datagram with control messages on the UDP socket.
func (c *Conn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	return c.udp.WriteMsgUDP(b, oob, addr)
}

// SyscallConn returns the UDP socket's raw connection.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.udp.SyscallConn() }

// SetReadBuffer sets the UDP socket's receive buffer.
func (c *Conn) SetReadBuffer(n int) error { return c.udp.SetReadBuffer(n) }

// SetWriteBuffer sets the UDP socket's send buffer.
func (c *Conn) SetWriteBuffer(n int) error { return c.udp.SetWriteBuffer(n) }

// LocalAddr returns the UDP socket's address.
func (c *Conn) LocalAddr() net.Addr { return c.udp.LocalAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.udp.SetWriteDeadline(t)
}

// SetReadDeadline sets the reader's deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.dl = t
	return c.udp.SetReadDeadline(t)
}

// SetWriteDeadline sets the UDP socket's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.udp.SetWriteDeadline(t) }

// Close closes the UDP socket and the forwarding sockets; other workers'
// packets for this one are then no longer taken.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		st := &c.stats
		c.log.Info("quic packets routed", zap.String("address", c.udp.LocalAddr().String()),
			zap.Uint64("forwarded", st.Forwarded.Load()), zap.Uint64("forward_failed", st.ForwardFailed.Load()),
			zap.Uint64("forward_dropped", st.ForwardDropped.Load()), zap.Uint64("received", st.Received.Load()),
			zap.Uint64("rejected", st.Rejected.Load()))
		close(c.closed)
		err = c.udp.Close()
		if c.in != nil {
			c.in.Close()
		}
		<-c.readerDone
		unix.Close(c.outFD)
	})
	return err
}
