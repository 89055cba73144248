package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Protocol is what a pool speaks to its host.
type Protocol int32

const (
	// Unknown: protocol "auto" before the first TLS handshake told.
	Unknown Protocol = iota
	// HTTP1 is HTTP/1.1 over Conn values (Get, Put).
	HTTP1
	// HTTP2 is multiplexed HTTP/2 (RoundTrip).
	HTTP2
)

// h2pool holds a pool's HTTP/2 connections. Each ClientConn multiplexes
// streams up to the host's SETTINGS_MAX_CONCURRENT_STREAMS; a connection
// that got a GOAWAY, reached its stream limit, or served
// max_requests_per_connection requests takes no new stream, and the next
// request opens a new connection.
type h2pool struct {
	p       *Pool // the pool it belongs to
	t       http2.Transport
	tls     *tls.Config // ALPN h2 (protocol http2) or h2, http/1.1 (auto)
	learned atomic.Int32

	mu    sync.Mutex
	conns []*h2conn
}

type h2conn struct {
	cc      *http2.ClientConn
	born    time.Time // when it was opened, for MaxConnectionDuration
	served  int       // streams started
	active  int       // streams not yet finished
	retired bool
}

// h2 returns the pool's HTTP/2 state, created on first use.
func (p *Pool) h2() *h2pool {
	p.h2once.Do(func() {
		h := &h2pool{p: p}
		h.t.AllowHTTP = true
		h.t.StrictMaxConcurrentStreams = false
		// A proxy passes Accept-Encoding on as the client sent it and the
		// body as the host encoded it: without this the transport adds
		// "accept-encoding: gzip" (also next to the client's own, which
		// it looks up under its canonical key) and decompresses the
		// response, dropping its Content-Encoding.
		h.t.DisableCompression = true
		if p.opts.TLS != nil {
			h.tls = p.opts.TLS.Clone()
			h.tls.NextProtos = []string{"h2"}
		}
		p.mu.Lock()
		p.h2p = h
		p.mu.Unlock()
	})
	return p.h2p
}

// ErrNotHTTP2 is returned by Negotiate's dial when the host chose HTTP/1.1
// by ALPN; the pool has learned it and keeps the connection for Get.
var ErrNotHTTP2 = errors.New("pool: host did not negotiate h2")

// Negotiate tells which protocol a cluster with protocol "auto" speaks to
// this host: HTTP/2 if the TLS handshake selects ALPN h2, else HTTP/1.1. The
// first call dials to find out; plaintext hosts are HTTP/1.1.
func (p *Pool) Negotiate(ctx context.Context) (Protocol, error) {
	if p.opts.TLS == nil {
		return HTTP1, nil
	}
	h := p.h2()
	if pr := Protocol(h.learned.Load()); pr != Unknown {
		return pr, nil
	}
	cfg := p.opts.TLS.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	held, err := p.acquire(true)
	if err != nil {
		return Unknown, err
	}
	nc, err := p.dial(ctx, cfg)
	if err != nil {
		p.release(held)
		return Unknown, err
	}
	if tc, ok := nc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		h.learned.Store(int32(HTTP2))
		if err := h.add(p, nc, held); err != nil {
			return Unknown, err
		}
		return HTTP2, nil
	}
	h.learned.Store(int32(HTTP1))
	c := newConn(nc, p, held)
	p.Put(c)
	return HTTP1, nil
}

// RoundTrip sends req on one of the pool's HTTP/2 connections (h2 over TLS,
// or h2c prior knowledge on plaintext), opening one when none can take a
// stream. maxRequests > 0 retires a connection after that many streams. The
// response body must be closed; closing it ends the stream's use of the
// connection. Safe for concurrent use.
//
// A request the upstream's GOAWAY left unprocessed (its stream above the
// frame's last-stream-id) is sent again on another connection, up to
// maxGoAwayRetries times, when its body can be sent again (none, or
// GetBody): the upstream guarantees it did not act on it (RFC 9113 §6.8),
// as Envoy, and x/net's own Transport, retry it.
func (p *Pool) RoundTrip(req *http.Request, maxRequests int) (*http.Response, error) {
	h := p.h2()
	for try := 0; ; try++ {
		c, err := h.get(req.Context(), p, maxRequests)
		if err != nil {
			return nil, err
		}
		resp, err := c.cc.RoundTrip(req)
		if err != nil {
			h.done(c)
			if try < maxGoAwayRetries && unprocessedByGoAway(err) {
				if again, ok := rewound(req); ok {
					req = again
					continue
				}
			}
			return nil, err
		}
		resp.Body = &h2body{ReadCloser: resp.Body, release: func() { h.done(c) }}
		return resp, nil
	}
}

// maxGoAwayRetries bounds the tries of a request that GOAWAY frames keep
// leaving unprocessed.
const maxGoAwayRetries = 3

// unprocessedByGoAway reports whether err is x/net's error for a stream
// above the last-stream-id of a GOAWAY with NO_ERROR (its
// errClientConnGotGoAway, not exported; the router's HTTP/2 upstream tests
// fail if its text changes).
func unprocessedByGoAway(err error) bool {
	return err.Error() == "http2: Transport received Server's graceful shutdown GOAWAY"
}

// rewound returns req ready to be sent again: as it is without a body, with
// a new body from GetBody otherwise; false when the body cannot be resent.
func rewound(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	again := *req
	again.Body = body
	return &again, true
}

// get reserves a stream on a connection that can take one, opening one if
// none can; while max_connections refuses that, it waits (wait.go) until a
// stream or a unit is given back or ctx ends.
func (h *h2pool) get(ctx context.Context, p *Pool, maxRequests int) (*h2conn, error) {
	count, waiting := true, false
	pause := time.Millisecond
	defer func() {
		if waiting {
			p.endWait()
		}
	}()
	for {
		now := time.Now()
		h.mu.Lock()
		h.conns = slices.DeleteFunc(h.conns, func(c *h2conn) bool {
			return c.active == 0 && c.cc.State().Closed
		})
		for _, c := range h.conns {
			if !c.retired && p.tooOld(c.born, now) {
				// max_connection_duration: no new stream; an idle
				// connection closes now, a busy one with its last stream.
				c.retired = true
				if c.active == 0 {
					go c.cc.Shutdown(context.Background())
				}
			}
			if c.retired || !c.cc.ReserveNewRequest() {
				continue
			}
			c.served++
			c.active++
			if maxRequests > 0 && c.served >= maxRequests {
				c.retired = true
			}
			h.mu.Unlock()
			return c, nil
		}
		h.mu.Unlock()
		held, err := p.acquire(count)
		if errors.Is(err, ErrOverflow) {
			if !waiting {
				waiting, count = true, false
				p.beginWait()
			}
			if err := p.pause(ctx, pause); err != nil {
				return nil, err
			}
			pause = min(2*pause, maxOverflowPoll)
			continue
		}
		if err != nil {
			return nil, err
		}
		nc, err := p.dial(ctx, h.tls)
		if err != nil {
			p.release(held)
			return nil, err
		}
		if err := h.add(p, nc, held); err != nil {
			return nil, err
		}
	}
}

// add starts an HTTP/2 client connection on nc, which holds a unit of the
// max_connections breaker when held: the connection gives it back when it
// closes.
func (h *h2pool) add(p *Pool, nc net.Conn, held bool) error {
	cn := &countedConn{Conn: nc, p: p, breaker: held}
	cc, err := h.t.NewClientConn(cn)
	if err != nil {
		cn.Close()
		return fmt.Errorf("%w: %s: http2: %w", ErrConnect, p.opts.Address, err)
	}
	h.mu.Lock()
	h.conns = append(h.conns, &h2conn{cc: cc, born: time.Now()})
	h.mu.Unlock()
	return nil
}

// done ends a stream's use of c; a retired connection closes with its last
// stream.
func (h *h2pool) done(c *h2conn) {
	h.mu.Lock()
	c.active--
	closeIt := c.retired && c.active == 0
	h.mu.Unlock()
	h.p.signal()
	if closeIt {
		go c.cc.Shutdown(context.Background())
	}
}

// close closes every HTTP/2 connection: at once, or gracefully (no new
// stream; each closes once its streams are done).
func (h *h2pool) close(graceful bool) {
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		if graceful {
			go c.cc.Shutdown(context.Background())
		} else {
			c.cc.Close()
		}
	}
}

// h2body releases the stream's connection when the body is closed.
type h2body struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *h2body) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// countedConn decrements upstream_cx_active, and gives back its unit of
// the max_connections breaker, once when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	p       *Pool
	breaker bool // holds a unit of the connections breaker
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		if st := c.p.opts.Stats; st != nil {
			st.UpstreamCxActive.Dec()
		}
		c.p.release(c.breaker)
	})
	return c.Conn.Close()
}

// NetConn returns the wrapped connection (for TLS state).
func (c *countedConn) NetConn() net.Conn { return c.Conn }
