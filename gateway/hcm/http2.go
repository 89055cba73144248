package hcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Downstream HTTP/2.
//
// A connection speaks HTTP/2 when TLS negotiated ALPN "h2", when the
// manager's codec_type is http2, or (codec auto, plaintext) when its first
// bytes are the h2c prior-knowledge preface. golang.org/x/net/http2 serves
// it: its server runs each stream's handler on its own goroutine, and the
// handler runs one stream of this package (see h2stream.go) through the same
// filter chain as an HTTP/1 request. Flow control is the server's: a handler
// blocked writing a response waits for the client's window, and a request
// body is only credited back to the client as the stream reads it.

// h2Preface is the client connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2PrefaceTail is what follows the part of the preface that parses as an
// HTTP/1 request head ("PRI * HTTP/2.0" and an empty line).
const h2PrefaceTail = "SM\r\n\r\n"

// isH2Preface reports whether an HTTP/1 head that failed with 505 was the
// start of the h2c preface: the bytes after it begin with the preface's tail.
func isH2Preface(buffered []byte) bool {
	n := min(len(buffered), len(h2PrefaceTail))
	return n > 0 && string(buffered[:n]) == h2PrefaceTail[:n]
}

// serveH2 serves the connection as HTTP/2 until it ends. readAhead holds
// bytes already read from nc (nil, or the whole preface and what follows).
func (c *connection) serveH2(nc netfilter.Conn, readAhead []byte) {
	f := c.f
	opts := &f.cfg.HTTP2
	// One http.Server per connection: its Shutdown starts the graceful
	// GOAWAY of exactly this connection.
	hs := &http.Server{
		MaxHeaderBytes: opts.MaxHeaderListSize,
		ErrorLog:       nil,
	}
	h2s := &http2.Server{
		MaxConcurrentStreams:         opts.MaxConcurrentStreams,
		MaxUploadBufferPerStream:     opts.InitialStreamWindowSize,
		MaxUploadBufferPerConnection: opts.InitialConnectionWindowSize,
		IdleTimeout:                  f.cfg.IdleTimeout.Duration,
	}
	if err := http2.ConfigureServer(hs, h2s); err != nil {
		f.log.Debug("http2 configure", zap.Error(err))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &h2conn{conn: c, nc: nc, readAhead: readAhead, hs: hs, goaway: newGoaway()}
	// The read side always counts as idle: a drain wakes the blocked frame
	// read with a past deadline, and h2conn.Read turns that into a graceful
	// GOAWAY instead of an error.
	_ = nc.SetReadDeadline(time.Time{})
	nc.SetIdle(true)
	if nc.Draining() {
		hc.drain()
	}
	var sc net.Conn = hc
	if c.info.TLSState != nil {
		sc = &h2tlsconn{hc}
	}
	h2s.ServeConn(sc, &http2.ServeConnOpts{Context: ctx, BaseConfig: hs, Handler: hc})
	nc.SetIdle(false)
}

// h2conn is the net.Conn the HTTP/2 server reads and writes, and the handler
// of its streams. The server reads on one goroutine and writes on one
// goroutine at a time, which netfilter.Conn allows.
type h2conn struct {
	conn      *connection
	nc        netfilter.Conn
	readAhead []byte
	hs        *http.Server
	drainOnce sync.Once
	goaway    *goaway
}

var _ net.Conn = (*h2conn)(nil)

// Read implements net.Conn. A deadline error while the worker drains is the
// drain's wake-up: it starts the graceful GOAWAY and reads on.
func (h *h2conn) Read(p []byte) (int, error) {
	if len(h.readAhead) > 0 {
		n := copy(p, h.readAhead)
		h.readAhead = h.readAhead[n:]
		h.goaway.sawInbound(p[:n])
		return n, nil
	}
	for {
		n, err := h.nc.Read(p)
		if n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) && h.nc.Draining() {
			h.nc.SetIdle(false)
			_ = h.nc.SetReadDeadline(time.Time{})
			h.drain()
			continue
		}
		if n > 0 {
			h.goaway.sawInbound(p[:n])
		}
		return n, err
	}
}

// Write implements net.Conn.
func (h *h2conn) Write(p []byte) (int, error) { return h.goaway.write(h.nc, p) }

// Close implements net.Conn.
func (h *h2conn) Close() error { return h.nc.Close() }

// LocalAddr implements net.Conn.
func (h *h2conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(h.conn.info.LocalAddr) }

// RemoteAddr implements net.Conn.
func (h *h2conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(h.conn.info.RemoteAddr) }

// SetDeadline implements net.Conn.
func (h *h2conn) SetDeadline(t time.Time) error {
	_ = h.nc.SetReadDeadline(t)
	return h.nc.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (h *h2conn) SetReadDeadline(t time.Time) error { return h.nc.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (h *h2conn) SetWriteDeadline(t time.Time) error { return h.nc.SetWriteDeadline(t) }

// h2tlsconn is an h2conn over TLS.
type h2tlsconn struct{ *h2conn }

// ConnectionState lets the HTTP/2 server apply its TLS checks (RFC 9113
// §9.2) and set http.Request.TLS.
func (h *h2tlsconn) ConnectionState() tls.ConnectionState { return *h.conn.info.TLSState }

// drain starts the graceful shutdown of the connection: a GOAWAY with the
// largest stream id and a PING, then, once the PING is answered (one round
// trip) or after goawayRTTLimit, the final GOAWAY naming the last stream
// served. In-flight streams finish; the connection closes when they have.
func (h *h2conn) drain() {
	h.drainOnce.Do(func() {
		h.goaway.start(func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			// Shutdown with a done context only triggers the GOAWAY: the
			// server tracks no listener or connection of its own.
			_ = h.hs.Shutdown(ctx)
		})
	})
}

// ServeHTTP implements http.Handler: it runs one stream.
func (h *h2conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.nc.Draining() {
		h.drain()
	}
	s := streamPool.Get().(*stream)
	s.conn = h.conn
	hs := h2streamPool.Get().(*h2stream)
	hs.w, hs.r = w, r
	hs.flusher, _ = w.(http.Flusher)
	s.h2 = hs
	abort := s.runH2()
	s.h2 = nil
	s.conn = nil
	*hs = h2stream{fieldBuf: hs.fieldBuf[:0]}
	h2streamPool.Put(hs)
	if len(s.posted) == 0 && cap(s.req.Headers.Fields) <= 256 {
		streamPool.Put(s)
	}
	if abort {
		// Reset the stream (RST_STREAM): the response could not be
		// completed.
		panic(http.ErrAbortHandler)
	}
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
