package hcm

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Graceful HTTP/2 shutdown in two steps (as Envoy does; RFC 9113 §6.8):
// first a GOAWAY naming the largest stream id, so that streams the client
// opened but the server has not seen yet still run, together with a PING;
// when the PING is answered (one round trip later) the HTTP/2 server's own
// graceful shutdown sends the final GOAWAY with the last stream it
// processed. x/net/http2 sends only the second, so the first is written
// here, between two of the server's frames: goaway follows the frame
// boundaries of both directions of the connection.

// goawayRTTLimit bounds the wait for the PING answer.
const goawayRTTLimit = time.Second

// firstGoaway is GOAWAY(last stream 2^31-1, NO_ERROR) then PING.
var firstGoaway = []byte{
	0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, length 8, stream 0
	0x7f, 0xff, 0xff, 0xff, // last stream id
	0, 0, 0, 0, // NO_ERROR
	0, 0, 8, 0x6, 0, 0, 0, 0, 0, // PING, length 8, stream 0
	's', 'l', 'u', 'i', 'c', 'e', 'g', 'a', // opaque data
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

// goaway is one connection's graceful-shutdown state.
type goaway struct {
	wmu     sync.Mutex // serialises writes to the connection
	wr      io.Writer  // the connection, once the server wrote to it
	out     frameScanner
	pending atomic.Bool // the first GOAWAY waits for a frame boundary
	pinged  atomic.Bool // it was written: a PING ACK ends the wait
	final   func()
	once    sync.Once
	timer   *time.Timer
}

func newGoaway() *goaway { return &goaway{} }

// start writes the first GOAWAY as soon as the connection is at a frame
// boundary, then runs final after one round trip.
func (g *goaway) start(final func()) {
	g.final = final
	g.timer = time.AfterFunc(goawayRTTLimit, g.finish)
	g.pending.Store(true)
	// If no write is under way, the connection is at a boundary unless the
	// server is between the two halves of a split frame; then its next
	// write carries the GOAWAY.
	if g.wmu.TryLock() {
		g.flushPendingLocked(nil)
		g.wmu.Unlock()
	}
}

func (g *goaway) finish() {
	g.once.Do(func() {
		g.timer.Stop()
		g.final()
	})
}

// flushPendingLocked writes the first GOAWAY if it is pending and the
// outbound stream is at a boundary.
func (g *goaway) flushPendingLocked(w io.Writer) {
	if !g.pending.Load() || !g.out.boundary() || g.wr == nil {
		return
	}
	if w == nil {
		w = g.wr
	}
	g.pending.Store(false)
	if _, err := w.Write(firstGoaway); err == nil {
		g.pinged.Store(true)
	} else {
		g.finish()
	}
}

// write writes p (frames from the HTTP/2 server) to w, slipping the first
// GOAWAY in at a frame boundary when it is pending.
func (g *goaway) write(w io.Writer, p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.wr = w
	if !g.pending.Load() {
		n, err := w.Write(p)
		g.track(p[:n])
		g.flushPendingLocked(w) // start may have run during the write
		return n, err
	}
	written := 0
	for written < len(p) {
		g.flushPendingLocked(w)
		k := g.out.scan(p[written:], nil)
		n, err := w.Write(p[written : written+k])
		written += n
		if err != nil {
			return written, err
		}
	}
	g.flushPendingLocked(w)
	return written, nil
}

// track follows the boundaries of bytes written.
func (g *goaway) track(p []byte) {
	for len(p) > 0 {
		p = p[g.out.scan(p, nil):]
	}
}

// sawPingAck sees a PING ACK from the client (see h2Inbound): it answers
// the first GOAWAY's PING once that was written.
func (g *goaway) sawPingAck() {
	if g.pinged.Load() {
		go g.finish() // the server's reader must not wait on its own writer
	}
}
