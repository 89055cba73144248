package hcm

import (
	"sync/atomic"
	"time"
)

// request_headers_timeout on HTTP/2.
//
// x/net/http2 reads a request's header block (a HEADERS frame and, without
// END_HEADERS, CONTINUATION frames) before it runs the stream's handler, and
// nothing else may arrive on the connection until the block ends (RFC 9113
// §6.10): a client that stops inside a block holds the whole connection.
// h2Inbound follows the frame headers of the bytes the server reads (the
// server reads each frame header and payload with exact-size reads, so the
// bytes pass through when the server consumes them) and tells a headBounds
// when a request header block opens and when its last frame has been read
// whole. headerTimer, the headBounds of a connection with
// request_headers_timeout, closes the connection when a block stays open
// longer than that (nothing else can be sent while a header block is open).

// HTTP/2 frame types and flags h2Inbound looks at (RFC 9113 §6).
const (
	h2FrameHeaders      = 0x1
	h2FrameContinuation = 0x9
	h2FlagEndHeaders    = 0x4
)

// headBounds is told when a request header block opens and when it ends.
type headBounds interface {
	start()
	stop()
}

// h2Inbound follows the frames a client sends on an HTTP/2 connection, from
// the client preface on. It is used by the server's reading goroutine only,
// and does not allocate.
type h2Inbound struct {
	sc        frameScanner
	bounds    headBounds // nil: request_headers_timeout is off
	maxStream uint32     // largest stream id a request header block opened
	inBlock   bool       // a request header block is open
	ending    bool       // the frame being read ends the open block
}

// newH2Inbound returns the watcher of a connection whose bytes start with
// the client preface.
func newH2Inbound(bounds headBounds) *h2Inbound {
	w := &h2Inbound{bounds: bounds}
	w.sc.skip = len(h2Preface)
	return w
}

// see follows the bytes p that the server read.
func (w *h2Inbound) see(p []byte) {
	for len(p) > 0 {
		p = p[w.sc.scan(p, w.frame):]
		if w.ending && w.sc.boundary() {
			// the last byte of the block's last frame was read
			w.ending, w.inBlock = false, false
			w.bounds.stop()
		}
	}
}

// frame sees one frame header.
func (w *h2Inbound) frame(h *[9]byte) {
	if w.bounds == nil {
		return
	}
	switch h[3] {
	case h2FrameHeaders:
		id := (uint32(h[5])<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])) &^ (1 << 31)
		if w.inBlock || id <= w.maxStream {
			// trailers (a stream's second block), or a protocol error
			// the server ends the connection for
			return
		}
		w.maxStream = id
		w.inBlock = true
		w.bounds.start()
		w.ending = h[4]&h2FlagEndHeaders != 0
	case h2FrameContinuation:
		w.ending = w.inBlock && h[4]&h2FlagEndHeaders != 0
	default:
		// Inside a block any other frame is a connection error the
		// server ends the connection for; the block stays open.
		w.ending = false
	}
}

// headerTimer bounds each request header block of one connection by
// timeout, and calls expire (once) when one stays open longer. It keeps one
// timer that is not touched per request: start and stop only record the
// block's start time; the timer, armed by the first start after it went
// idle, re-arms itself for the open block's deadline when it fires early,
// and goes idle when it finds no block open.
type headerTimer struct {
	timeout time.Duration
	expire  func()
	t       *time.Timer
	started atomic.Int64 // monoNow()+1 at the open block's start; 0: none
	on      atomic.Bool  // the timer is armed (or expired)
	dead    atomic.Bool  // expired, or the connection ended
}

// newHeaderTimer returns a headerTimer; its timer is not armed.
func newHeaderTimer(timeout time.Duration, expire func()) *headerTimer {
	h := &headerTimer{timeout: timeout, expire: expire}
	h.t = time.AfterFunc(time.Hour, h.fire)
	h.t.Stop()
	return h
}

func (h *headerTimer) start() {
	h.started.Store(monoNow() + 1)
	if h.on.CompareAndSwap(false, true) {
		h.t.Reset(h.timeout)
	}
}

func (h *headerTimer) stop() { h.started.Store(0) }

// fire runs on the timer's goroutine.
func (h *headerTimer) fire() {
	for {
		s := h.started.Load()
		if s != 0 {
			left := time.Duration(s - 1 + int64(h.timeout) - monoNow())
			if left > 0 {
				h.t.Reset(left)
				return
			}
			if h.dead.CompareAndSwap(false, true) {
				h.expire()
			}
			return
		}
		h.on.Store(false)
		// A start between the load and the store saw the timer armed and
		// left it: arm it again unless a later start did.
		if h.started.Load() == 0 || !h.on.CompareAndSwap(false, true) {
			return
		}
	}
}

// close ends the timer with its connection: expire will not run.
func (h *headerTimer) close() {
	h.dead.Store(true)
	h.on.Store(true) // no start arms the timer again
	h.t.Stop()
}

// frameScanner follows frame boundaries in one direction of a connection.
type frameScanner struct {
	skip int // bytes left of the current frame's payload (or the preface)
	hdr  [9]byte
	hdrN int
}

// boundary reports whether the scanner is between two frames.
func (f *frameScanner) boundary() bool { return f.skip == 0 && f.hdrN == 0 }

// scan consumes p up to the first frame boundary after at least one byte,
// and returns how many bytes it consumed; onHeader sees each complete frame
// header.
func (f *frameScanner) scan(p []byte, onHeader func(h *[9]byte)) int {
	i := 0
	for i < len(p) {
		if f.skip > 0 {
			n := min(f.skip, len(p)-i)
			f.skip -= n
			i += n
			if f.skip == 0 {
				return i
			}
			continue
		}
		n := copy(f.hdr[f.hdrN:], p[i:])
		f.hdrN += n
		i += n
		if f.hdrN < 9 {
			return i
		}
		f.hdrN = 0
		f.skip = int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
		if onHeader != nil {
			onHeader(&f.hdr)
		}
		if f.skip == 0 {
			return i
		}
	}
	return i
}
