package hcm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	h2codec "github.com/sluice-proxy/sluice/gateway/codec/http2"
	"github.com/sluice-proxy/sluice/gateway/internal/clock"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Downstream HTTP/2.
//
// A connection speaks HTTP/2 when TLS negotiated ALPN "h2", when the
// manager's codec_type is http2, or (codec auto, plaintext) when its first
// bytes are the h2c prior-knowledge preface. gateway/codec/http2 serves it:
// it runs each stream's handler on its own goroutine, and the handler runs
// one stream of this package (see h2stream.go) through the same filter chain
// as an HTTP/1 request. Flow control is the codec's: a handler blocked
// writing a response waits for the client's window, and a request body is
// only credited back to the client as the stream reads it.

// h2Preface is the client connection preface (RFC 9113 §3.4).
const h2Preface = h2codec.Preface

// h2PrefaceTail is what follows the part of the preface that parses as an
// HTTP/1 request head ("PRI * HTTP/2.0" and an empty line).
const h2PrefaceTail = "SM\r\n\r\n"

// isH2Preface reports whether an HTTP/1 head that failed with 505 was the
// start of the h2c preface: the bytes after it begin with the preface's tail.
func isH2Preface(buffered []byte) bool {
	n := min(len(buffered), len(h2PrefaceTail))
	return n > 0 && string(buffered[:n]) == h2PrefaceTail[:n]
}

// serveH2 serves the connection as HTTP/2 until it ends, or parks (see
// h2conn.Idle): then it returns true, and resumeH2 serves the connection
// again. readAhead holds bytes already read from nc: nil
// (serveH2 reads and checks the preface), or the whole preface, checked,
// and what follows.
func (c *connection) serveH2(nc netfilter.Conn, readAhead []byte) (parked bool) {
	f := c.f
	opts := &f.cfg.HTTP2
	if readAhead == nil {
		var err error
		if readAhead, err = readPreface(nc); err != nil {
			f.log.Debug("http2 preface", zap.Uint64("conn", c.info.ID), zap.Error(err))
			rejectPreface(nc)
			return false
		}
	}
	// The preface was checked here (readPreface, readPrefaceRest): the
	// server reads from the first frame on.
	hc := &h2conn{conn: c, nc: nc, out: newH2writer(nc), readAhead: readAhead[len(h2Preface):]}
	if t := f.cfg.RequestHeadersTimeout.Duration; t > 0 {
		// Only request_headers_timeout needs to follow the frames read.
		hc.headers = newHeaderTimer(t, hc.headersTimedOut)
		hc.in = newH2Inbound(hc.headers)
		hc.in.see(readAhead[:len(h2Preface)])
	}
	hc.srv = h2codec.NewConn(hc, h2codec.Options{
		MaxConcurrentStreams:        opts.MaxConcurrentStreams,
		InitialStreamWindowSize:     uint32(opts.InitialStreamWindowSize),
		InitialConnectionWindowSize: uint32(opts.InitialConnectionWindowSize),
		MaxHeaderListSize:           uint32(opts.MaxHeaderListSize),
		IdleTimeout:                 f.cfg.IdleTimeout.Duration,
		TLS:                         c.info.TLSState,
		RemoteAddr:                  c.info.RemoteAddr.String(),
		Log:                         f.log,
		ConnID:                      c.info.ID,
		RawFields:                   true,
	}, hc)
	// The read side always counts as idle: a drain wakes the blocked frame
	// read with a past deadline, and h2conn.Read turns that into a graceful
	// GOAWAY instead of an error.
	_ = nc.SetReadDeadline(time.Time{})
	nc.SetIdle(true)
	if nc.Draining() {
		hc.drain()
	}
	if !c.expires.IsZero() {
		// max_connection_duration: the same graceful GOAWAY as a drain.
		hc.expiry = time.AfterFunc(time.Until(c.expires), func() {
			f.stats.DownstreamCxMaxDurationReached.Inc()
			hc.drain()
		})
	}
	if hc.srv.Serve() {
		c.h2 = hc
		return true
	}
	hc.end()
	return false
}

// resumeH2 serves the parked HTTP/2 connection again (its socket became
// readable, its idle timeout closed it, or a drain woke it). It reports
// whether the connection parked again.
func (c *connection) resumeH2() (parked bool) {
	hc := c.h2
	hc.out.unpark()
	if hc.nc.Draining() {
		hc.nc.SetIdle(false)
		hc.drain()
	}
	if hc.srv.Resume() {
		return true
	}
	c.h2 = nil
	hc.end()
	return false
}

// end runs on the connection's goroutine once the server's reads are
// over: Close only flushed the writer and woke the read. It stops the
// connection's timers and closes it with a lingering close.
func (h *h2conn) end() {
	if h.headers != nil {
		h.headers.close()
	}
	if h.expiry != nil {
		h.expiry.Stop()
	}
	h.closing.Store(true)
	h.out.close() // waits for the final frames, whoever closed it first
	h.nc.SetIdle(false)
	lingerClose(h.nc)
}

// Idle implements h2codec.Idler. With no stream open, the connection waits
// parkAfter for the client's next bytes on its goroutine, as an HTTP/1
// keep-alive connection does; with none, it parks (netfilter.Conn.Park):
// its goroutine returns, and so does the writer's once it wrote what it
// had. Bytes that arrive in the wait are kept for the next Read.
func (h *h2conn) Idle() bool {
	if len(h.readAhead) > 0 || h.closing.Load() {
		return false
	}
	_ = h.nc.SetReadDeadline(time.Now().Add(parkAfter))
	n, err := h.nc.Read(h.peek[:])
	// Reset before the checks below: a Close or a drain that sets its
	// past deadline after them still wakes the next read.
	_ = h.nc.SetReadDeadline(time.Time{})
	switch {
	case n > 0:
		h.readAhead = h.peek[:n]
		return false
	case h.closing.Load():
		_ = h.nc.SetReadDeadline(time.Unix(1, 0)) // Close's wake-up, undone above
		return false
	case !errors.Is(err, os.ErrDeadlineExceeded):
		return false // the next Read sees the end of the connection
	case h.nc.Draining():
		h.nc.SetIdle(false)
		h.drain()
		return false
	}
	h.out.park()
	h.nc.Park()
	return true
}

// Wake implements h2codec.Idler: the connection's last stream ended, and
// the server's read may be blocked since before. A deadline parkAfter from
// now wakes it unless bytes came, and Read returns h2codec.ErrWoken, so
// that the server calls Idle. (A busy connection, whose next request
// comes sooner, is not woken for nothing; a deadline that passes during a
// later read costs one more read.)
func (h *h2conn) Wake() {
	_ = h.nc.SetReadDeadline(clock.Now().Add(parkAfter))
}

// h2conn is the transport of the connection's HTTP/2 server and the
// handler of its streams. The server reads on its own goroutine; its writes
// go through out, whose goroutine is the only writer of nc (h2write.go).
type h2conn struct {
	conn      *connection
	nc        netfilter.Conn
	out       *h2writer
	srv       *h2codec.Conn
	readAhead []byte
	in        *h2Inbound // follows what the server reads; nil without request_headers_timeout
	closing   atomic.Bool
	// Owned by the connection's goroutine:
	peek    [16]byte     // what Idle read, until the server reads it
	headers *headerTimer // request_headers_timeout's timer, or nil
	expiry  *time.Timer  // max_connection_duration's timer, or nil
}

// Read implements h2codec.Transport. A deadline error while the worker
// drains is the drain's wake-up: it starts the graceful GOAWAY. That and
// Wake's deadline make Read return h2codec.ErrWoken, after which the server
// reads on.
func (h *h2conn) Read(p []byte) (int, error) {
	if len(h.readAhead) > 0 {
		n := copy(p, h.readAhead)
		h.readAhead = h.readAhead[n:]
		if h.in != nil {
			h.in.see(p[:n])
		}
		return n, nil
	}
	n, err := h.nc.Read(p)
	if n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !h.closing.Load() {
		// Not Close's wake-up: a drain's, or Wake's deadline (which may
		// pass during a later read, since only this read resets it).
		draining := h.nc.Draining()
		if draining {
			h.nc.SetIdle(false)
		}
		_ = h.nc.SetReadDeadline(time.Time{})
		if h.closing.Load() {
			// Close came between the check and the reset of the
			// deadline, which undid its wake-up.
			return 0, err
		}
		if draining {
			h.drain()
		}
		// Between frames the server checks whether the connection may
		// park; inside one it reads on.
		return 0, h2codec.ErrWoken
	}
	if n > 0 && h.in != nil {
		h.in.see(p[:n])
	}
	return n, err
}

// headersTimedOut ends the connection when a request header block stayed
// open longer than request_headers_timeout (see h2headers.go).
func (h *h2conn) headersTimedOut() {
	h.conn.f.stats.DownstreamRqHeaderTimeout.Inc()
	h.conn.f.log.Debug("http2 request headers timeout", zap.Uint64("conn", h.conn.info.ID))
	_ = h.nc.Close()
}

// Write implements h2codec.Transport.
func (h *h2conn) Write(p []byte) (int, error) { return h.out.Write(p) }

// Close implements h2codec.Transport: what the server wrote is written out
// (bounded by h2CloseFlushLimit), then the server's blocked read is woken
// with a past deadline. It may run on any goroutine (the server calls it
// from one of its own), so it does not close the socket: serveH2 does, on
// the connection's goroutine once Serve returned, with a lingering close
// (see lingerClose), so that input the client sent after the final GOAWAY
// does not turn the close into a reset that would destroy the GOAWAY
// before the client read it.
func (h *h2conn) Close() error {
	h.closing.Store(true)
	h.out.close()
	_ = h.nc.SetReadDeadline(time.Unix(1, 0))
	return nil
}

// drain starts the graceful shutdown of the connection: a GOAWAY with the
// largest stream id and a PING, then, once the PING is answered (one round
// trip) or after a second, the final GOAWAY naming the last stream
// opened. In-flight streams finish; the connection closes when they have.
func (h *h2conn) drain() { h.srv.Shutdown() }

// ServeHTTP implements http.Handler: it runs one stream.
func (h *h2conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.nc.Draining() {
		h.drain()
	}
	if h.conn.lastRequest() {
		h.drain() // max_requests_per_connection: GOAWAY, in-flight streams finish
	}
	if serveStream(h.conn, w, r, protoHTTP2) {
		// Reset the stream (RST_STREAM): the response could not be
		// completed.
		panic(http.ErrAbortHandler)
	}
}

// h2PrefaceTimeout bounds the wait for the client's preface.
const h2PrefaceTimeout = 10 * time.Second

// readPreface reads the client connection preface of a connection that is
// HTTP/2 from its first byte (ALPN h2, or codec_type http2).
func readPreface(nc netfilter.Conn) ([]byte, error) {
	_ = nc.SetReadDeadline(time.Now().Add(h2PrefaceTimeout))
	defer nc.SetReadDeadline(time.Time{})
	b := make([]byte, len(h2Preface))
	if _, err := io.ReadFull(nc, b); err != nil {
		return nil, fmt.Errorf("hcm: reading http2 preface: %w", err)
	}
	if string(b) != h2Preface {
		return nil, errors.New("hcm: bad http2 preface")
	}
	return b, nil
}

// goawayBadPreface is GOAWAY(last stream 0, PROTOCOL_ERROR).
var goawayBadPreface = []byte{0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1}

// lingerLimit bounds how long a rejected connection's remaining input is
// read and discarded before the socket closes: Envoy's
// delayed_close_timeout. lingerBytes bounds how much of it is read.
const (
	lingerLimit = time.Second
	lingerBytes = 256 << 10
)

// rejectPreface ends a connection whose preface is invalid with a
// connection error of type PROTOCOL_ERROR (RFC 9113 §3.4): a GOAWAY, then
// a lingering close, so that unread input does not turn the close into a
// reset that could destroy the GOAWAY before the client reads it.
func rejectPreface(nc netfilter.Conn) {
	_ = nc.SetWriteDeadline(time.Now().Add(lingerLimit))
	if _, err := nc.Write(goawayBadPreface); err != nil {
		_ = nc.Close()
		return
	}
	lingerClose(nc)
}

// lingerClose half-closes nc, reads and discards what the client still
// sends (at most lingerBytes, for at most lingerLimit) and closes it. A
// close with unread input would send a reset, which can make the client's
// TCP stack drop what it received and has not read yet: the final
// response, or GOAWAY. With the lingering close the client reads it, then
// the end of the stream, and closes first.
func lingerClose(nc netfilter.Conn) {
	if nc.CloseWrite() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(lingerLimit))
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, lingerBytes))
	}
	_ = nc.Close()
}

// readPrefaceRest reads what is missing of the preface's tail after an
// HTTP/1 read stopped at the head "PRI * HTTP/2.0".
func readPrefaceRest(r io.Reader, buffered []byte) ([]byte, error) {
	out := make([]byte, 0, len(h2Preface)+len(buffered))
	out = append(out, h2Preface[:len(h2Preface)-len(h2PrefaceTail)]...)
	out = append(out, buffered...)
	if missing := len(h2PrefaceTail) - len(buffered); missing > 0 {
		tail := make([]byte, missing)
		if _, err := io.ReadFull(r, tail); err != nil {
			return nil, err
		}
		out = append(out, tail...)
	}
	if !bytes.HasPrefix(out, []byte(h2Preface)) {
		return nil, errors.New("hcm: bad http2 preface")
	}
	return out, nil
}
