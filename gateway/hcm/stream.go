package hcm

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/clock"
	"github.com/sluice-proxy/sluice/gateway/tracing"
)

// stream is one request/response exchange on a connection. The connection
// reuses one stream value for every request it serves (pipelining is
// sequential), so a stream's buffers are allocated once per connection.
type stream struct {
	// Owned by the connection's goroutine; reset per request.
	conn *connection
	req  http1.Request
	id   uint64
	info httpfilter.StreamInfo
	h    *httpfilter.RequestHeaders

	decoders   []httpfilter.DecoderFilter
	encoders   []httpfilter.EncoderFilter
	destroyers []interface{ OnDestroy() }
	// pacers are the encoder filters that limit the response body's
	// bandwidth (httpfilter.BodyPacer).
	pacers []httpfilter.BodyPacer
	route  httpfilter.Route
	// sendingLocal: SendLocalReply is under way on the stream.
	sendingLocal bool
	// decorated is the route decorator an ingress tracing manager puts in
	// the response's x-envoy-decorator-operation ("" for none).
	decorated  string
	routeValid bool
	// envoyHdrs: the request may carry x-envoy-* fields (EnvoyHeaders).
	envoyHdrs bool

	// Decode iteration (see advance).
	hdrsTo      int  // headers were delivered to decoders[:hdrsTo]
	parkAt      int  // index of the filter that parked the chain, or -1
	stopAll     bool // the park was HeadersStopAllAndBuffer
	heldAt      int  // held data goes next to decoders[heldAt]; -1: nothing held
	holdBlocked bool // decoders[heldAt-1] asked to buffer: wait for it
	heldEnd     bool // held data ends the body
	heldLimit   int  // bytes held before 413; 0: the connection's buffer limit (httpfilter.BufferLimiter)
	trailersTo  int  // trailers were delivered to decoders[:trailersTo]
	held        buffer.Buffer
	heldView    buffer.Buffer // held data as the filters see it (push)
	cur         buffer.Buffer
	noBody      bool // the request has no body
	bodyDone    bool // the request body was read to its end
	trailers    *httpfilter.Headers
	posted      chan func()

	// Response state.
	respStarted bool // the response head was written (or is pending in conn.w)
	// headAt is where the HTTP/1 response head starts in conn.w, and
	// headFlushes conn.flushes then: while conn.flushes is unchanged, none
	// of the response has left (see unsendHead).
	headAt      int
	headFlushes uint64
	// peerToken is the connection's peer-close watch while the router
	// has one (peerwatch.go), peerFired whether one fired.
	peerToken   uint64
	peerFired   bool
	respDone    bool // the response is complete
	reset       bool // the stream ended abnormally: close the connection
	closeAfter  bool // close the connection after this response
	respFraming http1.Framing
	resp        *httpfilter.ResponseHeaders // the head sent, for the access log
	rec         accesslog.Record
	local       httpfilter.ResponseHeaders
	localBody   buffer.Buffer
	// tail holds the body bytes an encoder filter held back, on their
	// way out before the trailers (EncodeTrailers).
	tail buffer.Buffer

	// span is the request's trace span while the manager traces.
	span tracing.Span

	// h2 is set for an HTTP/2 stream: the codec seam's HTTP/2 paths.
	h2 *h2stream

	// Scratch, kept across requests.
	rid     [36]byte
	xff     []byte
	bodyBuf []byte
	pathBuf []byte // the normalized path (pathnorm.go)
	xfccBuf []byte // x-forwarded-client-cert with APPEND_FORWARD (xfcc.go)
}

// run serves the request in s.req and reports whether the connection
// may serve another.
func (s *stream) run() bool {
	c := s.conn
	req := &s.req
	s.begin(req)
	if c.lastRequest() {
		s.closeAfter = true // max_requests_per_connection
	}
	h := s.h
	pathReply, pathOK := s.normalizePath(h)
	s.decorate(h)
	s.startSpan(h)
	if pathOK {
		s.route, s.routeValid = c.f.routes.Match(h), true
		s.decorateSpan(h)
		s.createFilters()
	}
	s.noBody = req.Framing == http1.NoBody || (req.Framing == http1.ContentLength && req.ContentLength == 0)
	s.bodyDone = s.noBody
	if s.noBody {
		s.info.DownstreamRequestEnd = s.info.Start
	}
	if pathOK {
		s.advance()
	} else {
		s.SendLocalReply(pathReply)
	}
	if !s.noBody && !s.ended() {
		s.readBody()
	}
	s.awaitEnd()
	s.UnwatchPeer() // the filters are destroyed in end, after the access log
	if s.peerFired {
		s.reset = true // the client is gone
	}
	keep := req.KeepAlive && !s.closeAfter && !s.reset && s.respDone && s.bodyDone
	if !keep && !s.reset && (!s.bodyDone || len(c.r.Buffered()) > 0) {
		// answered before the request's body was read, or with
		// pipelined requests behind it
		c.linger = true
	}
	s.end()
	return keep
}

func (s *stream) begin(req *http1.Request) {
	c := s.conn
	s.id = streamIDs.Add(1)
	s.peerToken, s.peerFired = 0, false
	s.info = httpfilter.StreamInfo{
		ConnectionID:     c.info.ID,
		Start:            clock.Now(),
		DownstreamRemote: c.info.RemoteAddr,
		DownstreamPeer:   c.info.RemoteAddr,
		DownstreamLocal:  c.info.LocalAddr,
		OriginalDst:      c.info.OriginalDst(),
		ServerName:       c.info.ServerName,
		TLS:              c.info.TLSState,
		Protocol:         "HTTP/1.1",
	}
	s.info.DownstreamDirectRemote = c.info.DirectRemote()
	if req.Minor == 0 {
		s.info.Protocol = "HTTP/1.0"
	}
	s.h = &req.Headers
	s.resp = nil
	st := c.f.stats
	st.DownstreamRqTotal.Inc()
	st.DownstreamRqActive.Inc()
	s.hdrsTo, s.parkAt, s.heldAt, s.trailersTo = 0, -1, -1, 0
	s.stopAll, s.holdBlocked, s.heldEnd = false, false, false
	s.heldLimit = 0
	s.held.Reset()
	s.trailers = nil
	s.respStarted, s.respDone, s.reset = false, false, false
	// A connection that cannot move to the next generation is asked to
	// close as the drain strategy decides (gradual or immediate).
	s.closeAfter = !c.c.CanHandoff() && c.c.DrainClose()
	// After an upgrade request or a CONNECT the client may send tunnel
	// bytes at once: whatever the answer, the connection ends with it.
	s.closeAfter = s.closeAfter || req.Upgrade != nil || string(req.Headers.Method) == "CONNECT"
	s.route, s.routeValid = nil, false
	s.decorated = ""
}

func (s *stream) end() {
	f := s.conn.f
	f.stats.DownstreamRqActive.Dec()
	f.stats.Response(s.info.ResponseCode)
	now := clock.Now()
	d := now.Sub(s.info.Start)
	if s.h2 == nil {
		s.conn.ended = now // the wait for the next request starts now
	}
	f.stats.DownstreamRqTime.Record(d)
	s.finishSpan(now)
	if s.info.ResponseFlags&httpfilter.FlagNoRoute != 0 {
		f.stats.NoRoute.Inc()
	}
	if len(f.loggers) > 0 {
		s.rec = accesslog.Record{Info: &s.info, Request: s.h, Response: s.resp, Duration: d}
		for _, lg := range f.loggers {
			lg.Log(&s.rec)
		}
		s.rec = accesslog.Record{}
	}
	// The filters are destroyed only after the access log has been
	// written: the heads it prints may belong to them (the router's
	// response head and rewritten path go back to its pool in OnDestroy).
	for _, d := range s.destroyers {
		d.OnDestroy()
	}
	clear(s.decoders)
	s.decoders = s.decoders[:0]
	clear(s.encoders)
	s.encoders = s.encoders[:0]
	clear(s.destroyers)
	s.destroyers = s.destroyers[:0]
	clear(s.pacers)
	s.pacers = s.pacers[:0]
	s.route = nil
	s.h = nil
}

func (s *stream) ended() bool { return s.respDone || s.reset }

// requestEnded notes that the request body was read to its end, and when
// (%REQUEST_DURATION%).
func (s *stream) requestEnded() {
	s.bodyDone = true
	s.info.DownstreamRequestEnd = clock.Now()
}

// decorate adds the headers an edge proxy adds: x-forwarded-for,
// x-forwarded-proto and x-request-id.
func (s *stream) decorate(h *httpfilter.RequestHeaders) {
	c := s.conn
	if m := c.f.stripPort; m != stripNone {
		stripHostPort(h, m, c.info.LocalAddr.Port())
	}
	if c.info.TLS {
		h.Scheme = schemeHTTPS
	} else {
		h.Scheme = schemeHTTP
	}
	// Without the pass below nothing tells whether the request carries
	// x-envoy-* fields: the router looks for its override headers itself.
	cfg := c.f.cfg
	s.envoyHdrs = !*cfg.UseRemoteAddress
	if !*cfg.UseRemoteAddress {
		// Envoy's x-forwarded-for detection: the address the previous
		// proxy appended (xff_num_trusted_hops more trusted proxies
		// skipped) is the client, for the access log, rbac's remote_ip
		// and every filter reading the stream's remote address.
		if a, ok := xffAddr(&h.Headers, int(cfg.XFFNumTrustedHops)); ok {
			s.info.DownstreamRemote = netip.AddrPortFrom(a, 0)
		}
	}
	if *cfg.UseRemoteAddress {
		// The client is the peer, or, behind xff_num_trusted_hops
		// trusted proxies, the address the farthest of them appended to
		// x-forwarded-for (Envoy's getLastAddressFromXFF with n-1
		// skipped); internal_address_config judges that address.
		internal, fromXFF := c.internal, false
		trusted := cfg.XFFNumTrustedHops > 0
		keepXFP := false
		if trusted {
			if a, ok := xffAddr(&h.Headers, int(cfg.XFFNumTrustedHops)-1); ok {
				s.info.DownstreamRemote = netip.AddrPortFrom(a, 0)
				internal, fromXFF = c.f.isInternal(a), true
			}
			// a trusted previous hop's x-forwarded-proto stands
			keepXFP = h.Has("x-forwarded-proto")
		}
		// One pass takes out what the proxy sets itself: the client's
		// x-forwarded-for values (kept in front of the client address),
		// x-forwarded-proto, x-envoy-original-path (the router sets it on
		// a rewrite; a client's would be printed as the request's path by
		// the default access log format), x-envoy-internal and
		// x-envoy-external-address, and an external client's
		// internal-only x-envoy-* headers, and its x-request-id unless
		// preserve_external_request_id (a new one is made below).
		s.xff = s.xff[:0]
		dropRID := !internal && !cfg.PreserveExternalRequestID && *cfg.GenerateRequestID
		out := 0
		for i := range h.Fields {
			f := h.Fields[i]
			switch n := f.Name; {
			case string(n) == "x-forwarded-for":
				s.xff = append(append(s.xff, f.Value...), ',', ' ')
				continue
			case string(n) == "x-forwarded-proto" && !keepXFP, dropRID && string(n) == "x-request-id",
				c.dropXFCC && string(n) == "x-forwarded-client-cert":
				continue
			case len(n) > len(envoyPrefix) && string(n[:len(envoyPrefix)]) == envoyPrefix:
				if rest := string(n[len(envoyPrefix):]); rest == "original-path" || rest == "internal" ||
					rest == "external-address" || !internal && internalOnly[rest] {
					continue
				}
				// A kept x-envoy-* field: the router looks for the
				// override headers it consumes (EnvoyHeaders).
				s.envoyHdrs = true
			}
			h.Fields[out] = f
			out++
		}
		clear(h.Fields[out:])
		h.Fields = h.Fields[:out]
		if !cfg.SkipXFFAppend {
			s.xff = append(s.xff, c.remoteIP...)
			h.AddBytes(hdrXFF, s.xff)
		} else if len(s.xff) > 0 {
			h.AddBytes(hdrXFF, s.xff[:len(s.xff)-2]) // as the client sent it
		}
		if !keepXFP {
			h.AddBytes(hdrXFP, h.Scheme)
		}
		if cfg.MarkInternalRequests {
			if internal {
				h.AddBytes(hdrEnvoyInternal, valTrue)
			} else if fromXFF {
				h.AddBytes(hdrExternalAddress, s.info.DownstreamRemote.Addr().AppendTo(nil))
			} else {
				h.AddBytes(hdrExternalAddress, c.remoteIP)
			}
		}
	}
	switch {
	case c.xfcc != nil:
		s.setXFCC(h)
	case c.dropXFCC && !*cfg.UseRemoteAddress: // else the pass above did
		h.Del("x-forwarded-client-cert")
	}
	if v := c.f.via; v != nil {
		appendVia(&h.Headers, v)
	}
	if *cfg.GenerateRequestID && !h.Has("x-request-id") {
		h.AddBytes(hdrRequestID, newRequestID(&s.rid))
	}
}

// startSpan begins the request's trace span when the manager traces: after
// decorate, so that the span sees the request id and the traceparent it
// sets goes upstream.
func (s *stream) startSpan(h *httpfilter.RequestHeaders) {
	if t := s.conn.f.tracer; t != nil {
		t.Start(&s.span, h, s.conn.internal, s.info.Start)
		if t.SpawnsUpstreamSpans() {
			s.info.UpstreamTracer = s
		}
	}
}

// decoratorHeader carries a span's operation name between proxies.
const decoratorHeader = "x-envoy-decorator-operation"

// decoratedRoute is a route with Envoy's decorator (router.Route).
type decoratedRoute interface {
	Decorator() (operation string, propagate bool)
}

// decorateSpan names the span as Envoy does once the route is known: the
// route's decorator, overridden on an ingress manager by a request's
// x-envoy-decorator-operation (which does not go upstream); an egress
// manager sends the decorator upstream in that header. The decorator to
// send back on an ingress response is kept in s.decorated.
func (s *stream) decorateSpan(h *httpfilter.RequestHeaders) {
	t := s.conn.f.tracer
	if t == nil {
		return
	}
	op, propagate := "", false
	if d, ok := s.route.(decoratedRoute); ok && s.route != nil {
		op, propagate = d.Decorator()
	}
	if op != "" {
		s.span.SetOperation(op)
	}
	if t.Egress() {
		if op != "" && propagate {
			h.Set(decoratorHeader, op)
		}
		return
	}
	if v := h.Get(decoratorHeader); v != nil {
		if len(v) > 0 {
			s.span.SetOperation(string(v))
			op = ""
		}
		h.Del(decoratorHeader)
	}
	if propagate {
		s.decorated = op
	}
}

// decorateResponse passes the span's operation on in the response head:
// an ingress manager's route decorator goes to the client, an egress
// manager takes the upstream's x-envoy-decorator-operation as its span's
// name and drops it.
func (s *stream) decorateResponse(h *httpfilter.ResponseHeaders) {
	if s.conn.f.tracer.Egress() {
		if v := h.Get(decoratorHeader); v != nil {
			if len(v) > 0 {
				s.span.SetOperation(string(v))
			}
			h.Del(decoratorHeader)
		}
		return
	}
	if s.decorated != "" {
		h.Set(decoratorHeader, s.decorated)
	}
}

// UpstreamTry implements httpfilter.UpstreamTracer for a manager tracing
// with spawn_upstream_span.
func (s *stream) UpstreamTry(h *httpfilter.RequestHeaders, host string) {
	s.conn.f.tracer.UpstreamTry(&s.span, h, host, clock.Now())
}

// finishSpan ends the request's trace span when the manager traces.
func (s *stream) finishSpan(now time.Time) {
	if t := s.conn.f.tracer; t != nil {
		t.Finish(&s.span, &s.info, s.h, now)
	}
}

// envoyPrefix starts the names of Envoy's own headers.
const envoyPrefix = "x-envoy-"

// internalOnly are the x-envoy-* headers (without the prefix) only an
// internal caller may set (Envoy's list, less internal, external-address
// and original-path, which decorate removes from every request): they
// steer retries and timeouts. External requests lose them.
var internalOnly = map[string]bool{
	"decorator-operation":        true,
	"downstream-service-cluster": true, "downstream-service-node": true, "retry-on": true,
	"retry-grpc-on": true, "max-retries": true, "upstream-alt-stat-name": true,
	"upstream-rq-timeout-ms": true, "upstream-rq-per-try-timeout-ms": true,
	"upstream-rq-timeout-alt-response": true, "expected-rq-timeout-ms": true, "force-trace": true,
	"ip-tags": true, "original-url": true, "hedge-on-per-try-timeout": true,
	"retriable-status-codes": true, "retriable-header-names": true,
}

// EnvoyHeaders reports whether the request may carry x-envoy-* fields
// (false when the connection manager's pass over its fields kept none): the
// router consumes its override headers only then.
func (s *stream) EnvoyHeaders() bool { return s.envoyHdrs }

var (
	hdrEnvoyInternal   = []byte("x-envoy-internal")
	hdrExternalAddress = []byte("x-envoy-external-address")
	valTrue            = []byte("true")
	schemeHTTP         = []byte("http")
	schemeHTTPS        = []byte("https")
	hdrXFF             = []byte("x-forwarded-for")
	hdrXFP             = []byte("x-forwarded-proto")
	hdrRequestID       = []byte("x-request-id")
)

// newRequestID formats a random (version 4) UUID into b.
func newRequestID(b *[36]byte) []byte {
	const hexd = "0123456789abcdef"
	var u [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		u[i] = byte(hi >> (8 * i))
		u[8+i] = byte(lo >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	j := 0
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexd[x>>4], hexd[x&0xf]
		j += 2
	}
	return b[:]
}

func (s *stream) createFilters() {
	for _, hf := range s.conn.f.filters {
		if s.route != nil && s.route.FilterDisabled(hf.name) {
			continue
		}
		inst := hf.factory.NewFilter(s)
		if d, ok := inst.(httpfilter.DecoderFilter); ok {
			s.decoders = append(s.decoders, d)
		}
		if e, ok := inst.(httpfilter.EncoderFilter); ok {
			s.encoders = append(s.encoders, e)
			if p, ok := e.(httpfilter.BodyPacer); ok {
				s.pacers = append(s.pacers, p)
			}
		}
		if d, ok := inst.(interface{ OnDestroy() }); ok {
			s.destroyers = append(s.destroyers, d)
		}
	}
}

// xffAddr returns the address x-forwarded-for names skip entries from its
// right end, as Envoy's getLastAddressFromXFF: the fields' values read as
// one comma-separated list, the entry trimmed of spaces and tabs, an IPv4
// or IPv6 address without a port or zone. It reports false when the list
// is shorter or the entry is not an address.
func xffAddr(h *httpfilter.Headers, skip int) (netip.Addr, bool) {
	for i := len(h.Fields) - 1; i >= 0; i-- {
		if string(h.Fields[i].Name) != "x-forwarded-for" {
			continue
		}
		v := h.Fields[i].Value
		for {
			j := bytes.LastIndexByte(v, ',')
			if skip == 0 {
				e := bytes.Trim(v[j+1:], " \t")
				if len(e) == 0 || len(e) > 45 || bytes.IndexByte(e, '%') >= 0 {
					return netip.Addr{}, false
				}
				// The string aliases e only during the call: an address
				// without a zone keeps no reference to its text.
				a, err := netip.ParseAddr(unsafe.String(&e[0], len(e)))
				return a, err == nil
			}
			skip--
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return netip.Addr{}, false
}

// lastRequest counts a request of the connection and reports whether it
// reaches max_requests_per_connection (counted once, in
// downstream_cx_max_requests_reached) or went past it.
func (c *connection) lastRequest() bool {
	max := c.f.cfg.MaxRequestsPerConnection
	if max == 0 {
		return false
	}
	n := c.requests.Add(1)
	if n == max {
		c.f.stats.DownstreamCxMaxRequestsReached.Inc()
	}
	return n >= max
}
