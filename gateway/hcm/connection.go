package hcm

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// connection is one downstream connection: HTTP/1 served on its goroutine
// by serveOne, or HTTP/2 (see http2.go).
type connection struct {
	// Immutable after Serve starts:
	f        *Factory
	c        netfilter.Conn
	info     *netfilter.Info
	remoteIP []byte // textual client address, for x-forwarded-for
	internal bool   // the client's address is internal (internal_address_config)
	// dropXFCC: requests lose x-forwarded-client-cert; xfcc, when set,
	// is the element they get instead (initXFCC).
	dropXFCC bool
	xfcc     []byte
	// requests counts the connection's requests, for
	// max_requests_per_connection (atomic: HTTP/2 and HTTP/3 streams run
	// on goroutines of their own).
	requests atomic.Uint32

	// Owned by the connection's goroutine:
	r         *http1.Reader // nil while parked
	w         []byte        // response bytes not yet written
	idleSince time.Time     // start of the current wait for a request
	headLimit time.Time     // request_headers_timeout deadline of a partly read head, or zero
	expires   time.Time     // end of max_connection_duration, or zero
	expired   bool          // max_connection_duration was reached (and counted)
	handedOff bool          // the connection went to the next generation
	s         *stream       // nil while parked
	// wor, when the connection has one, writes a finished response from
	// inside the read of the next request (see stream.finish); deferred
	// says c.w holds such a response, not yet handed to it.
	wor      netfilter.WriteOnReader
	deferred bool
	// ended is when the last request ended (its stream's end read the
	// clock), for the wait for the next one; zero once used.
	ended time.Time
	// rdl is the read deadline last set (setReadDeadline).
	rdl time.Time
	// h2 is the HTTP/2 side of a connection that parked (serveH2), nil
	// otherwise.
	h2 *h2conn
	// flushes counts the writes of w (flush).
	flushes uint64
	// pw is c's peer-close watch, when it has one (peerwatch.go).
	pw netfilter.PeerCloseWatcher
	// linger says the connection ends while the client may still be
	// sending (a request rejected or answered before its body was read,
	// or pipelined requests not served): it closes with a lingering
	// close, so that the unread input does not turn the close into a
	// reset that can destroy the response before the client reads it.
	linger bool
}

// setReadDeadline sets the connection's read deadline and remembers it.
func (c *connection) setReadDeadline(t time.Time) {
	c.rdl = t
	_ = c.c.SetReadDeadline(t)
}

var _ netfilter.Terminal = (*connection)(nil)

// netfilter.Terminal

func (c *connection) OnEvent(netfilter.Event) {}

// parkAfter is how long a keep-alive connection waits for its next request
// on its own goroutine before it parks (see netfilter.Conn.Park) and gives
// its goroutine and buffers back.
const parkAfter = 100 * time.Millisecond

// Serve reads requests until the connection ends or parks. After a park it
// is called again, on a new goroutine, when the socket is readable.
func (c *connection) Serve(nc netfilter.Conn) {
	if c.h2 != nil {
		// a parked HTTP/2 connection, served again
		if !c.resumeH2() {
			c.f.stats.DownstreamCxActive.Dec()
			c.f.stats.DownstreamCxDestroy.Inc()
		}
		return
	}
	if c.c == nil {
		c.c = nc
		c.info = nc.Info()
		c.remoteIP = c.info.RemoteAddr.Addr().AppendTo(nil)
		c.internal = c.f.isInternal(c.info.RemoteAddr.Addr())
		c.initXFCC()
		c.wor, _ = nc.(netfilter.WriteOnReader)
		c.pw, _ = nc.(netfilter.PeerCloseWatcher)
		if !c.info.Adopted { // else the previous generation counted it
			c.f.stats.DownstreamCxTotal.Inc()
		}
		c.f.stats.DownstreamCxActive.Inc()
		if d := c.f.cfg.MaxConnectionDuration.Duration; d > 0 {
			c.expires = time.Now().Add(d)
		}
		if c.info.NegotiatedALPN == "h2" || c.f.cfg.CodecType == "http2" {
			if !c.serveH2(nc, nil) {
				c.f.stats.DownstreamCxActive.Dec()
				c.f.stats.DownstreamCxDestroy.Inc()
			}
			return
		}
	}
	c.r = readerPool.Get().(*http1.Reader)
	c.r.Reset(nc)
	c.s = streamPool.Get().(*stream)
	c.s.conn = c
	c.w = getWriteBuf()
	for {
		keep, park := c.serveOne()
		if c.h2 != nil {
			// The client opened with the h2c preface: the connection
			// is HTTP/2 now, and parked (resumeH2 serves it again).
			c.release()
			return
		}
		if park || !keep {
			c.flushDeferred()
		}
		if park {
			c.release()
			c.c.Park()
			return
		}
		if !keep {
			c.release()
			if c.linger {
				lingerClose(c.c)
			}
			c.f.stats.DownstreamCxActive.Dec()
			if !c.handedOff { // else it lives on in the next generation
				c.f.stats.DownstreamCxDestroy.Inc()
			}
			return
		}
	}
}

// Per-connection state a parked connection does not need comes from pools,
// so that an idle keep-alive connection costs little more than its socket.
var (
	readerPool = sync.Pool{New: func() any { return http1.NewReader(nil) }}
	streamPool = sync.Pool{New: func() any { return &stream{posted: make(chan func(), 16)} }}
)

// release gives the connection's reader, stream and buffers back while it
// parks or ends.
func (c *connection) release() {
	c.r.Release()
	readerPool.Put(c.r)
	c.r = nil
	putWriteBuf(c.w)
	c.w = nil
	s := c.s
	c.s = nil
	s.conn = nil
	if len(s.posted) == 0 && cap(s.req.Headers.Fields) <= 256 {
		streamPool.Put(s)
	}
}

// serveOne reads and serves one request; it reports whether the connection
// stays open for another, and whether it should park first.
func (c *connection) serveOne() (keep, park bool) {
	c.headLimit = time.Time{}
	if c.c.Draining() {
		c.flushDeferred()
		return c.drainBetweenRequests(), false
	}
	if len(c.r.Buffered()) > 0 {
		// (part of) the next request is here already: the client
		// pipelines. Its responses are written as they finish from now
		// on, since a request it sends while another is at the upstream
		// would not wake a wait that writes on read (see stream.finish).
		c.flushDeferred()
		c.wor = nil
		now, limit := time.Now(), time.Time{}
		if t := c.f.cfg.IdleTimeout.Duration; t > 0 {
			limit = now.Add(t)
		}
		c.setHeadDeadline(now, limit)
		return c.readAndServe(), false
	}
	now := c.ended
	if now.IsZero() {
		now = time.Now()
	}
	c.ended = time.Time{}
	if c.idleSince.IsZero() {
		c.idleSince = now
	}
	if c.pastDuration(now) {
		return false, false // max_connection_duration: close while idle
	}
	// limit ends the wait for a request: the idle timeout, or
	// max_connection_duration when sooner. A head that started arriving
	// gets the rest of the idle time only (headLimit).
	wait, limit, headLimit := parkAfter, time.Time{}, time.Time{}
	if t := c.f.cfg.IdleTimeout.Duration; t > 0 {
		limit = c.idleSince.Add(t)
		headLimit = limit
	}
	if !c.expires.IsZero() && (limit.IsZero() || c.expires.Before(limit)) {
		limit = c.expires
	}
	if !limit.IsZero() {
		if left := limit.Sub(now); left <= 0 {
			return false, false // idle timeout
		} else if left < wait {
			wait = left
		}
	}
	// The deadline goes first: a drain that starts after SetIdle wakes the
	// read with a past deadline, which must not be overwritten.
	// The wait's deadline only decides when the connection parks (and is
	// never later than its limit): one that leaves at least half the wait
	// is kept, which spares a timer update per request on a busy
	// connection.
	if d := now.Add(wait); c.rdl.IsZero() || c.rdl.After(d) || c.rdl.Sub(now) < wait/2 {
		c.setReadDeadline(d)
	}
	c.c.SetIdle(true)
	if c.c.Draining() {
		c.c.SetIdle(false)
		c.flushDeferred()
		return c.drainBetweenRequests(), false
	}
	handed := false
	if c.deferred {
		// The last response goes out from inside the read of the next
		// request, which waits for it without a read that finds nothing.
		c.deferred = false
		if handed = c.wor.WriteOnRead(c.w); !handed {
			_ = c.flush()
		}
	}
	err := c.r.ReadRequest(&c.s.req, &c.f.limits)
	if handed {
		_ = c.wor.FlushWrite() // written by the read, unless none came
		c.w = c.w[:0]
	}
	c.c.SetIdle(false)
	if err == nil {
		return c.served(), false
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || c.c.Draining() {
		return c.readError(err), false
	}
	if len(c.r.Buffered()) > 0 {
		// a request started arriving: give it the rest of the idle time,
		// or request_headers_timeout when that ends sooner
		c.setHeadDeadline(time.Now(), headLimit)
		return c.readAndServe(), false
	}
	if !limit.IsZero() && !time.Now().Before(limit) {
		c.pastDuration(time.Now())
		return false, false // idle timeout or max_connection_duration
	}
	// Quiet for parkAfter: park until readable, the idle limit, or a drain.
	if !limit.IsZero() {
		c.setReadDeadline(limit)
	} else {
		c.setReadDeadline(time.Time{})
	}
	c.c.SetIdle(true)
	if c.c.Draining() {
		c.c.SetIdle(false)
		return c.drainBetweenRequests(), false
	}
	return true, true
}

// setHeadDeadline sets the read deadline for the rest of a request head
// whose first bytes arrived by now: the idle limit (zero: none), or now +
// request_headers_timeout when that is sooner. The head's first byte may
// have arrived up to parkAfter before now, so the timeout is enforced with
// at most that much slack.
func (c *connection) setHeadDeadline(now, idleLimit time.Time) {
	d := idleLimit
	if t := c.f.cfg.RequestHeadersTimeout.Duration; t > 0 {
		c.headLimit = now.Add(t)
		if d.IsZero() || c.headLimit.Before(d) {
			d = c.headLimit
		}
	}
	c.setReadDeadline(d)
}

// pastDuration reports whether max_connection_duration has passed at now;
// the first time, it counts downstream_cx_max_duration_reached.
func (c *connection) pastDuration(now time.Time) bool {
	if c.expires.IsZero() || now.Before(c.expires) {
		return false
	}
	if !c.expired {
		c.expired = true
		c.f.stats.DownstreamCxMaxDurationReached.Inc()
	}
	return true
}

// readAndServe reads a request whose first bytes are buffered, then serves it.
func (c *connection) readAndServe() bool {
	if err := c.r.ReadRequest(&c.s.req, &c.f.limits); err != nil {
		return c.readError(err)
	}
	return c.served()
}

// served runs the stream of the request just read. The read deadline of
// the wait for it is lifted only when a body is to be read: the next wait
// sets its own.
func (c *connection) served() bool {
	c.idleSince = time.Time{}
	if req := &c.s.req; req.Framing != http1.NoBody {
		c.setReadDeadline(time.Time{})
	}
	return c.runRequest()
}

// runRequest runs the stream of the request just read, unless
// headers_with_underscores_action refuses it: then it is answered 400
// (Envoy's http1.unexpected_underscore) and the connection closes, as
// after any codec error.
func (c *connection) runRequest() bool {
	if c.f.underscores != underscoresAllow && !c.f.checkUnderscores(&c.s.req.Headers.Headers, 0) {
		c.f.stats.DownstreamCxProtocolError.Inc()
		c.s.headReply(httpfilter.LocalReply{Status: 400, Flags: httpfilter.FlagDownstreamProtocolError, Details: underscoreDetails[0]})
		return false
	}
	return c.s.run()
}

// readError handles a failed request-head read: a clean close, a timeout
// (idle timeout, request_headers_timeout answered with 408, or a drain
// waking an idle connection), or a protocol error
// that gets its status and a closed connection.
func (c *connection) readError(err error) bool {
	var pe *http1.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.c.SetIdle(false)
		if c.c.Draining() {
			// a drain woke the read: move the connection on, with any
			// partial request already read
			return c.drainBetweenRequests()
		}
		if !c.headLimit.IsZero() && !time.Now().Before(c.headLimit) {
			c.s.headersTimeout()
		}
		return false
	case errors.As(err, &pe) && pe.Status == 505 && c.h2cAllowed() && isH2Preface(c.r.Buffered()):
		// the h2c prior-knowledge preface: the rest of the connection
		// is HTTP/2
		readAhead, err := readPrefaceRest(c.c, c.r.Buffered())
		if err != nil {
			c.f.log.Debug("http2 preface", zap.Uint64("conn", c.info.ID), zap.Error(err))
			rejectPreface(c.c)
			return false
		}
		c.serveH2(c.c, readAhead)
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
		c.handedOff = true
		return false
	}
	if len(c.r.Buffered()) == 0 {
		return false
	}
	c.setReadDeadline(time.Now().Add(5 * time.Second))
	err := c.r.ReadRequest(&c.s.req, &c.f.limits)
	if err != nil {
		var pe *http1.Error
		if errors.As(err, &pe) {
			c.s.badRequest(pe)
		}
		return false
	}
	c.setReadDeadline(time.Time{})
	c.runRequest()
	return false
}

// h2cAllowed reports whether a plaintext connection may switch to HTTP/2 by
// the prior-knowledge preface.
func (c *connection) h2cAllowed() bool {
	return c.f.cfg.CodecType == "auto" && !c.info.TLS
}

// bufferLimit is per_connection_buffer_limit_bytes of the listener.
func (c *connection) bufferLimit() int { return c.info.BufferLimit }

// flushDeferred writes a finished response stream.finish left for the read
// of the next request, when that read does not come.
func (c *connection) flushDeferred() {
	if c.deferred {
		c.deferred = false
		_ = c.flush()
	}
}

// flush writes pending response bytes.
func (c *connection) flush() error {
	if len(c.w) == 0 {
		return nil
	}
	_, err := c.c.Write(c.w)
	c.w = c.w[:0]
	c.flushes++
	return err
}

// localReplyHeaders builds a local reply's head into h. The reply's own
// headers come with it, but framing stays the manager's: a content-length,
// transfer-encoding or connection field among them (an ext_authz plugin's
// denial may carry any) is dropped, since it would not describe the body
// sent. A content-type among them replaces the default text/plain.
func localReplyHeaders(h *httpfilter.ResponseHeaders, r *httpfilter.LocalReply, body []byte) {
	h.Reset()
	h.Status = r.Status
	ownType := false
	for _, f := range r.Headers {
		if bytes.EqualFold(f.Name, hdrContentType) {
			ownType = true
		}
	}
	if len(body) > 0 && !ownType {
		h.AddBytes(hdrContentType, textPlain)
	}
	for _, f := range r.Headers {
		if !localReplyFraming(f.Name) {
			h.Fields = append(h.Fields, f)
		}
	}
}

// localReplyFraming reports whether a local reply's header field name is
// one the manager sets itself from the reply's body and connection.
func localReplyFraming(name []byte) bool {
	for _, n := range [...]string{"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "proxy-connection"} {
		if len(name) == len(n) && bytes.EqualFold(name, []byte(n)) {
			return true
		}
	}
	return false
}

var (
	hdrContentType = []byte("content-type")
	textPlain      = []byte("text/plain")
)

// Tunnels (WebSocket upgrades and CONNECT).

var _ httpfilter.Tunneler = (*stream)(nil)

// UpgradeRequested implements httpfilter.Tunneler. An "Upgrade: h2c"
// request is served as a plain HTTP/1.1 request (the parser already
// removed the field), as Envoy does without HTTP/2 upgrade support.
func (s *stream) UpgradeRequested() string {
	if s.h2 != nil {
		return s.h2.upgrade
	}
	if string(s.req.Headers.Method) == "CONNECT" {
		return "CONNECT"
	}
	if len(s.req.Upgrade) == 0 || bytes.EqualFold(s.req.Upgrade, h2cToken) {
		return ""
	}
	return string(s.req.Upgrade)
}

var h2cToken = []byte("h2c")

// Tunnel implements httpfilter.Tunneler.
func (s *stream) Tunnel(h *httpfilter.ResponseHeaders, up httpfilter.TunnelConn) error {
	if s.h2 != nil {
		return s.h2Tunnel(h, up)
	}
	if s.ended() || s.respStarted {
		return errStreamEnded
	}
	for i := len(s.encoders) - 1; i >= 0; i-- {
		s.encoders[i].EncodeHeaders(h, false)
	}
	c := s.conn
	s.respStarted = true
	s.resp = h
	s.info.ResponseCode = h.Status
	s.closeAfter = true
	c.w = http1.AppendResponseHead(c.w, s.req.Major, s.req.Minor, h, http1.NoBody, -1, true)
	if c.flush() != nil {
		s.downstreamGone()
		return errStreamEnded
	}
	c.f.stats.DownstreamCxUpgradesTotal.Inc()
	c.f.stats.DownstreamCxUpgradesActive.Inc()
	c.tunnel(s, up)
	c.f.stats.DownstreamCxUpgradesActive.Dec()
	s.respDone, s.bodyDone = true, true
	return nil
}

// tunnel copies bytes both ways between the downstream connection and up,
// like tcp_proxy: upstream to downstream on a second goroutine (the
// netfilter.Conn contract allows Write and CloseWrite there), downstream to
// upstream on the connection's goroutine, starting with what the reader
// already holds past the request head. A clean end of one direction is
// passed on as a half-close; an error aborts both. It returns when both
// directions are over, or stream_idle_timeout passed with no byte moving
// either way (flag SI). The tunnel is never handed off: during a drain it
// runs until it ends or the worker closes the connection at drain_timeout.
func (c *connection) tunnel(s *stream, up httpfilter.TunnelConn) {
	c.setReadDeadline(time.Time{})
	_ = c.c.SetWriteDeadline(time.Time{})
	var sent int64
	idle := s.watchTunnel(func() {
		_ = up.Close()
		_ = c.c.Close()
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, bodyChunk)
		n, err := io.CopyBuffer(writerOnly{c.c}, idle.reader(up), buf)
		sent = n
		if err == nil && c.c.CloseWrite() == nil {
			return
		}
		_ = up.Close()
		_ = c.c.Close()
	}()
	if s.bodyBuf == nil {
		s.bodyBuf = make([]byte, bodyChunk)
	}
	down := c.r.BodyReader(http1.UntilClose, -1)
	n, err := io.CopyBuffer(writerOnly{up}, idle.reader(down), s.bodyBuf)
	if err != nil || up.CloseWrite() != nil {
		_ = up.Close()
		_ = c.c.Close()
	}
	<-done
	idle.stop()
	if idle.fired() {
		s.info.ResponseFlags |= httpfilter.FlagStreamIdleTimeout
		c.f.stats.DownstreamRqIdleTimeout.Inc()
	}
	s.info.BytesReceived += n
	s.info.BytesSent += sent
}

// readerOnly and writerOnly hide ReaderFrom and WriterTo, so that
// io.CopyBuffer uses the buffer it is given.
type (
	readerOnly struct{ io.Reader }
	writerOnly struct{ io.Writer }
)
