package hotrestart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// version is the framing version carried by every packet.
	version = 1
	// headerLen is the size of a packet header.
	headerLen = 8
	// flagMore marks a packet that is followed by more of its message.
	flagMore = 1 << 0
	// maxChunk bounds the body bytes of one packet, well under the default
	// socket send buffer so that one packet always fits.
	maxChunk = 32 << 10
	// MaxFDsPerPacket bounds the descriptors passed with one packet
	// (SCM_MAX_FD is 253 on Linux).
	MaxFDsPerPacket = 250
	// MaxBody bounds the body of one logical message.
	MaxBody = 64 << 20
	// MaxFDs bounds the descriptors of one logical message.
	MaxFDs = 1 << 16
)

// ErrProtocol is wrapped by every error about malformed packets.
var ErrProtocol = errors.New("hotrestart: protocol error")

// Conn is one end of a control channel.
//
// Send may be called from several goroutines: each message is written whole
// before the next one starts. Recv must be called from one goroutine at a
// time. Close may be called at any time, from any goroutine; it makes a
// blocked Send or Recv return.
type Conn struct {
	uc  *net.UnixConn
	raw syscall.RawConn

	wmu  sync.Mutex // serialises whole messages on the write side
	rbuf []byte     // owned by the Recv goroutine
	oob  []byte     // owned by the Recv goroutine
}

// Pair returns the two connected ends of a new control channel. Both are
// close-on-exec; the end meant for a child process is usually turned into a
// file with File and given to exec.Cmd.ExtraFiles.
func Pair() (a, b *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("hotrestart: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control"), nil
}

// NewConn returns a Conn on f, which must be a SOCK_SEQPACKET unix socket.
// The Conn works on a duplicate: the caller keeps f and may close it.
func NewConn(f *os.File) (*Conn, error) {
	typ, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("hotrestart: %s is not a socket: %w", f.Name(), err)
	}
	if typ != unix.SOCK_SEQPACKET {
		return nil, fmt.Errorf("hotrestart: %s is not a SOCK_SEQPACKET socket", f.Name())
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("hotrestart: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("hotrestart: %s is not a unix socket", f.Name())
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("hotrestart: %w", err)
	}
	return &Conn{
		uc:   uc,
		raw:  raw,
		rbuf: make([]byte, headerLen+maxChunk),
		oob:  make([]byte, unix.CmsgSpace(MaxFDsPerPacket*4)),
	}, nil
}

// Close closes the channel. The peer's Recv then returns io.EOF.
func (c *Conn) Close() error { return c.uc.Close() }

// Send writes m, split into as many packets as its body and descriptors
// need. It does not close m.FDs.
func (c *Conn) Send(m Message) error {
	if len(m.Body) > MaxBody {
		return fmt.Errorf("hotrestart: send %s: body of %d bytes exceeds %d", m.Type, len(m.Body), MaxBody)
	}
	if len(m.FDs) > MaxFDs {
		return fmt.Errorf("hotrestart: send %s: %d fds exceed %d", m.Type, len(m.FDs), MaxFDs)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	body, fds := m.Body, m.FDs
	pkt := make([]byte, headerLen+min(len(body), maxChunk))
	for first := true; first || len(body) > 0 || len(fds) > 0; first = false {
		nb, nf := min(len(body), maxChunk), min(len(fds), MaxFDsPerPacket)
		var flags byte
		if nb < len(body) || nf < len(fds) {
			flags = flagMore
		}
		pkt = pkt[:headerLen+nb]
		pkt[0], pkt[1], pkt[2], pkt[3] = version, byte(m.Type), flags, byte(nf)
		binary.BigEndian.PutUint32(pkt[4:8], uint32(nb))
		copy(pkt[headerLen:], body[:nb])
		var oob []byte
		if nf > 0 {
			oob = unix.UnixRights(fds[:nf]...)
		}
		if err := c.sendPacket(pkt, oob); err != nil {
			return fmt.Errorf("hotrestart: send %s: %w", m.Type, err)
		}
		body, fds = body[nb:], fds[nf:]
	}
	return nil
}

func (c *Conn) sendPacket(pkt, oob []byte) error {
	var serr error
	err := c.raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgN(int(fd), pkt, oob, nil, unix.MSG_NOSIGNAL)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// Recv reads the next message. It returns io.EOF when the peer has closed
// its end (or exited) between messages, and io.ErrUnexpectedEOF when it did
// so in the middle of one. On error no descriptor is left open.
func (c *Conn) Recv() (Message, error) {
	var m Message
	for first := true; ; first = false {
		n, fds, err := c.recvPacket()
		m.FDs = append(m.FDs, fds...)
		if err == nil && n == 0 {
			err = io.EOF
			if !first {
				err = io.ErrUnexpectedEOF
			}
		}
		if err == nil {
			err = c.checkPacket(&m, n, len(fds), first)
		}
		if err != nil {
			m.CloseFDs()
			return Message{}, err
		}
		m.Body = append(m.Body, c.rbuf[headerLen:n]...)
		if c.rbuf[2]&flagMore == 0 {
			return m, nil
		}
	}
}

// checkPacket validates the header of a packet of n bytes that came with
// nfds descriptors, against the message m assembled so far.
func (c *Conn) checkPacket(m *Message, n, nfds int, first bool) error {
	h := c.rbuf[:headerLen]
	switch {
	case n < headerLen:
		return fmt.Errorf("%w: short packet of %d bytes", ErrProtocol, n)
	case h[0] != version:
		return fmt.Errorf("%w: version %d, want %d", ErrProtocol, h[0], version)
	case int(binary.BigEndian.Uint32(h[4:8])) != n-headerLen:
		return fmt.Errorf("%w: length %d, packet holds %d", ErrProtocol, binary.BigEndian.Uint32(h[4:8]), n-headerLen)
	case int(h[3]) != nfds:
		return fmt.Errorf("%w: header announces %d fds, got %d", ErrProtocol, h[3], nfds)
	case !first && Type(h[1]) != m.Type:
		return fmt.Errorf("%w: %s packet inside a %s message", ErrProtocol, Type(h[1]), m.Type)
	case len(m.Body)+n-headerLen > MaxBody || len(m.FDs) > MaxFDs:
		return fmt.Errorf("%w: %s message too large", ErrProtocol, Type(h[1]))
	}
	m.Type = Type(h[1])
	return nil
}

// recvPacket reads one packet into c.rbuf and returns its length and the
// descriptors it carried.
func (c *Conn) recvPacket() (int, []int, error) {
	var n, oobn, rflags int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, rflags, _, rerr = unix.Recvmsg(int(fd), c.rbuf, c.oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		if errors.Is(err, unix.ECONNRESET) {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("hotrestart: recv: %w", err)
	}
	var fds []int
	if oobn > 0 {
		cmsgs, perr := unix.ParseSocketControlMessage(c.oob[:oobn])
		if perr != nil {
			return 0, nil, fmt.Errorf("%w: %v", ErrProtocol, perr)
		}
		for i := range cmsgs {
			if cmsgs[i].Header.Level != unix.SOL_SOCKET || cmsgs[i].Header.Type != unix.SCM_RIGHTS {
				continue
			}
			got, perr := unix.ParseUnixRights(&cmsgs[i])
			if perr == nil {
				fds = append(fds, got...)
			}
		}
	}
	if rflags&unix.MSG_CTRUNC != 0 {
		return 0, fds, fmt.Errorf("%w: control data truncated (out of file descriptors?)", ErrProtocol)
	}
	if rflags&unix.MSG_TRUNC != 0 {
		return 0, fds, fmt.Errorf("%w: packet larger than %d bytes", ErrProtocol, len(c.rbuf))
	}
	return n, fds, nil
}
