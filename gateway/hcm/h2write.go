package hcm

import (
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// Write coalescing for downstream HTTP/2.
//
// Each stream hands its frames to the connection as soon as it has them;
// written straight into the connection, that would be one TLS record and
// one write system call per response under concurrent streams. h2writer
// sits between the HTTP/2 connection and the socket: a write copies its
// bytes into a pending buffer and returns, and one writer goroutine per
// connection writes whatever has accumulated while its previous write was
// under way. Before it takes a batch it yields once (runtime.Gosched), so
// that the stream goroutines that are ready to run (their upstream answers
// came in the same poll of the network) add their frames first: with
// h2load's 10 streams per connection, 0.15 write calls per response are
// left (strace), and the CPU per request fell by a fifth. Frames leave
// in the order they were written.
//
// Memory stays bounded: a flush waits while the pending bytes and its own
// would pass h2WriteBufferLimit (so a client that does not read stops the
// server, as before), and the writer returns its buffers to a pool once it
// has nothing left to write.

// h2WriteBufferLimit bounds the bytes waiting for the writer goroutine of
// one connection (a single larger flush is still taken whole when nothing
// else waits).
const h2WriteBufferLimit = 64 << 10

// h2CloseFlushLimit bounds how long closing the connection waits for the
// pending bytes (the last responses, the final GOAWAY) to be written.
const h2CloseFlushLimit = time.Second

// h2writeBufSize is the capacity of the pooled pending buffers.
const h2writeBufSize = 16 << 10

var h2writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, h2writeBufSize)
	return &b
}}

// deadlineWriter is the connection under an h2writer.
type deadlineWriter interface {
	io.Writer
	SetWriteDeadline(t time.Time) error
}

// h2writer is the coalescing writer of one HTTP/2 connection.
type h2writer struct {
	nc deadlineWriter

	mu      sync.Mutex
	cond    sync.Cond // signalled when buf gains or loses bytes, and when the writer ends
	buf     []byte    // bytes written by the server, not yet on the connection
	writing bool      // the writer goroutine is writing a batch
	running bool      // the writer goroutine exists
	parked  bool      // the connection parked: the writer goroutine ends once idle
	closed  bool
	err     error // the first write error: every later write fails with it
}

func newH2writer(nc deadlineWriter) *h2writer {
	w := &h2writer{nc: nc}
	w.cond.L = &w.mu
	return w
}

// Write queues p for the writer goroutine. It waits while the pending bytes
// are at the limit, and fails once a write to the connection failed.
func (w *h2writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && !w.closed && len(w.buf) > 0 && len(w.buf)+len(p) > h2WriteBufferLimit {
		w.cond.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, net.ErrClosed
	}
	if w.buf == nil {
		w.buf = (*h2writeBufPool.Get().(*[]byte))[:0]
	}
	w.buf = append(w.buf, p...)
	if !w.running {
		w.running = true
		go w.run()
	} else if !w.writing {
		w.cond.Broadcast()
	}
	return len(p), nil
}

// run is the writer goroutine: it writes the pending bytes in batches until
// the writer is closed and drained, or a write fails.
func (w *h2writer) run() {
	var spare []byte
	w.mu.Lock()
	for {
		if len(w.buf) == 0 && !w.closed && w.err == nil {
			// Idle: return the buffers until the next burst.
			putH2writeBuf(spare)
			spare = nil
			putH2writeBuf(w.buf)
			w.buf = nil
			for w.buf == nil && !w.closed && w.err == nil && !w.parked {
				w.cond.Wait()
			}
		}
		if len(w.buf) == 0 || w.err != nil {
			break
		}
		// Let the goroutines that are ready to run (streams whose
		// upstream answers arrived in the same poll) add their frames
		// before the batch leaves.
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
		b := w.buf
		w.buf = spare
		w.writing = true
		w.mu.Unlock()
		_, err := w.nc.Write(b)
		w.mu.Lock()
		w.writing = false
		spare = b[:0]
		if err != nil {
			w.err = err
		}
		w.cond.Broadcast() // room for a waiting Write
	}
	putH2writeBuf(spare)
	putH2writeBuf(w.buf)
	w.buf = nil
	w.running = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// park makes the writer goroutine end once it has nothing left to write:
// the connection parked. A later Write starts another.
func (w *h2writer) park() {
	w.mu.Lock()
	w.parked = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// unpark undoes park: the connection is served again.
func (w *h2writer) unpark() {
	w.mu.Lock()
	w.parked = false
	w.mu.Unlock()
}

// close stops taking writes and waits, at most h2CloseFlushLimit, until the
// pending bytes are written. The caller closes the connection after it.
// Every call waits, not only the first: a second caller must not close
// the connection under a flush the first one started.
func (w *h2writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		w.cond.Broadcast()
		if w.running && (len(w.buf) > 0 || w.writing) {
			// A client that does not read fails the write at the deadline.
			_ = w.nc.SetWriteDeadline(time.Now().Add(h2CloseFlushLimit))
		}
	}
	for w.running {
		w.cond.Wait()
	}
}

func putH2writeBuf(b []byte) {
	if b == nil || cap(b) > 4*h2writeBufSize {
		return // nil, or grown by one large flush: left to the collector
	}
	b = b[:0]
	h2writeBufPool.Put(&b)
}
