package hcm

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// connection is one downstream HTTP/1 connection.
type connection struct {
	// Immutable after Serve starts:
	f        *Factory
	c        netfilter.Conn
	info     *netfilter.Info
	remoteIP []byte // textual client address, for x-forwarded-for

	// Owned by the connection's goroutine:
	r   *http1.Reader
	w   []byte // response bytes not yet written
	req http1.Request
	s   stream
}

var _ netfilter.Terminal = (*connection)(nil)

// netfilter.Terminal

func (c *connection) OnEvent(netfilter.Event) {}

// Serve reads requests until the connection ends.
func (c *connection) Serve(nc netfilter.Conn) {
	c.c = nc
	c.info = nc.Info()
	c.remoteIP = c.info.RemoteAddr.Addr().AppendTo(nil)
	c.r = http1.NewReader(nc)
	c.w = getWriteBuf()
	c.s.conn = c
	c.s.posted = make(chan func(), 16)
	defer func() {
		c.r.Release()
		putWriteBuf(c.w)
		c.w = nil
	}()
	for c.serveOne() {
	}
}

// serveOne reads and serves one request; it reports whether the connection
// stays open for another.
func (c *connection) serveOne() bool {
	// The idle deadline goes first: a drain that starts after SetIdle wakes
	// the read with a past deadline, which must not be overwritten.
	if t := c.f.cfg.IdleTimeout.Duration; t > 0 {
		_ = c.c.SetReadDeadline(time.Now().Add(t))
	}
	if c.c.Draining() {
		return c.drainBetweenRequests()
	}
	idle := len(c.r.Buffered()) == 0
	if idle {
		c.c.SetIdle(true)
		if c.c.Draining() {
			return c.drainBetweenRequests()
		}
	}
	err := c.r.ReadRequest(&c.req, &c.f.limits)
	if idle {
		c.c.SetIdle(false)
	}
	if err != nil {
		return c.readError(err)
	}
	_ = c.c.SetReadDeadline(time.Time{})
	return c.s.run()
}

// readError handles a failed request-head read: a clean close, a timeout
// (idle timeout, or a drain waking an idle connection), or a protocol error
// that gets its status and a closed connection.
func (c *connection) readError(err error) bool {
	var pe *http1.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.c.Draining() {
			// a drain woke the read: move the connection on, with any
			// partial request already read
			return c.drainBetweenRequests()
		}
		return false
	case errors.As(err, &pe):
		c.f.log.Debug("bad request", zap.Uint64("conn", c.info.ID), zap.Int("status", pe.Status), zap.String("reason", pe.Reason))
		c.s.badRequest(pe)
		return false
	default:
		return false
	}
}

// drainBetweenRequests hands the connection, with whatever of the next
// request was already read, to the next generation. Where that cannot be
// done, an idle connection closes and a partly received request is served
// (its response then carries Connection: close).
func (c *connection) drainBetweenRequests() bool {
	if c.c.Handoff(c.r.Buffered()) {
		return false
	}
	if len(c.r.Buffered()) == 0 {
		return false
	}
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	err := c.r.ReadRequest(&c.req, &c.f.limits)
	if err != nil {
		var pe *http1.Error
		if errors.As(err, &pe) {
			c.s.badRequest(pe)
		}
		return false
	}
	_ = c.c.SetReadDeadline(time.Time{})
	c.s.run()
	return false
}

// bufferLimit is per_connection_buffer_limit_bytes of the listener.
func (c *connection) bufferLimit() int { return c.info.BufferLimit }

// flush writes pending response bytes.
func (c *connection) flush() error {
	if len(c.w) == 0 {
		return nil
	}
	_, err := c.c.Write(c.w)
	c.w = c.w[:0]
	return err
}

// localReplyHeaders builds a local reply's head into h.
func localReplyHeaders(h *httpfilter.ResponseHeaders, r *httpfilter.LocalReply, body []byte) {
	h.Reset()
	h.Status = r.Status
	if len(body) > 0 {
		h.AddBytes(hdrContentType, textPlain)
	}
	h.Fields = append(h.Fields, r.Headers...)
}

var (
	hdrContentType = []byte("content-type")
	textPlain      = []byte("text/plain")
)
