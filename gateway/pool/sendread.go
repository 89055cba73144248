package pool

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/sockpeek"
	"github.com/sluice-proxy/sluice/gateway/internal/writeread"
)

// sendReader is the source of a pool connection's response reader: a write
// WriteOnRead deferred is done by its next Read, as one step with the read
// of the answer (see package writeread) on a plain TCP connection.
type sendReader struct {
	nc      net.Conn
	wr      *writeread.Conn // nil: not a plain TCP connection
	pending []byte          // written by the next Read before it reads
	werr    error           // the deferred write's error, until WriteErr takes it
}

func newSendReader(nc net.Conn) *sendReader {
	return &sendReader{nc: nc, wr: writeread.New(nc)}
}

// Read implements io.Reader: a pending write goes first.
func (s *sendReader) Read(p []byte) (int, error) {
	if s.pending == nil {
		return s.nc.Read(p)
	}
	if s.wr == nil || len(p) == 0 {
		s.flush()
		return s.nc.Read(p)
	}
	b := s.pending
	s.pending = nil
	n, err, werr := s.wr.WriteRead(b, p)
	if werr != nil {
		// The rest of the request is lost; an early response may still
		// be there to read.
		s.werr = werr
		return s.nc.Read(p)
	}
	return n, err
}

// flush writes a pending write now.
func (s *sendReader) flush() {
	if s.pending != nil {
		b := s.pending
		s.pending = nil
		_, s.werr = s.nc.Write(b)
	}
}

// WriteOnRead makes the next read of c.R write b first, so that on a plain
// TCP connection no read is tried before the answer can be there (package
// writeread). b must stay unchanged until WriteErr. If R already holds
// bytes, b is written at once.
func (c *Conn) WriteOnRead(b []byte) {
	s := c.src
	s.werr = nil
	if len(b) == 0 {
		return
	}
	s.pending = b
	if len(c.R.Buffered()) > 0 {
		s.flush()
	}
}

// WriteErr returns the error of the write WriteOnRead deferred, writing it
// first if no read took it.
func (c *Conn) WriteErr() error {
	s := c.src
	s.flush()
	err := s.werr
	s.werr = nil
	return err
}

// earlyResponsePoll is how often a blocked WriteBody looks for an early
// response.
const earlyResponsePoll = 50 * time.Millisecond

// ErrEarlyResponse is WriteBody's error when it gave up writing because the
// upstream answered before taking the whole request.
var ErrEarlyResponse = errors.New("pool: upstream answered before the request was sent")

// bodyWatch looks, while a write is blocked, for bytes from the upstream.
type bodyWatch struct {
	peek   *sockpeek.Peeker
	conn   net.Conn // what deadlines are set on
	t      *time.Timer
	mu     sync.Mutex
	active bool // a write is under way; guarded by mu
	fired  bool // the write was stopped; guarded by mu
}

func (w *bodyWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.active {
		return
	}
	if w.peek.Peek() == sockpeek.Data {
		w.fired = true
		_ = w.conn.SetWriteDeadline(time.Unix(1, 0))
		return
	}
	w.t.Reset(earlyResponsePoll)
}

// WriteBody writes b, part of a request, as Write does; but a write that
// blocks because the upstream stopped reading, while the upstream has
// answered (an early 413, say, from an upstream that neither reads the
// rest nor closes), is abandoned with ErrEarlyResponse, as Envoy passes on
// a response that comes before the end of the request: the caller stops
// sending and reads the response, and the connection is not reused.
//
// On a TLS connection the write is plain: bytes on its socket may be
// records that are no response (a TLS 1.3 server sends its session
// tickets after the handshake, unread until the response is), so no peek
// can tell an early response there.
func (c *Conn) WriteBody(b []byte) (int, error) {
	if c.tls {
		return c.Conn.Write(b)
	}
	w := c.watch
	if w == nil {
		w = &bodyWatch{peek: c.peek, conn: c.Conn}
		w.t = time.AfterFunc(time.Hour, w.check)
		c.watch = w
	}
	w.mu.Lock()
	w.active, w.fired = true, false
	w.mu.Unlock()
	w.t.Reset(earlyResponsePoll)
	n, err := c.Conn.Write(b)
	w.t.Stop()
	w.mu.Lock()
	w.active = false
	fired := w.fired
	w.mu.Unlock()
	if fired {
		if err == nil {
			// Written after all: the deadline set to stop it goes.
			_ = c.Conn.SetWriteDeadline(time.Time{})
			return n, nil
		}
		return n, ErrEarlyResponse
	}
	return n, err
}

// Answered reports whether the upstream has sent bytes not read yet: with
// the request not all written, an early response. One non-blocking peek;
// on a TLS connection only what was read already counts (bytes on its
// socket may be a session ticket, see WriteBody).
func (c *Conn) Answered() bool {
	if len(c.R.Buffered()) > 0 {
		return true
	}
	return !c.tls && c.peek.Peek() == sockpeek.Data
}
