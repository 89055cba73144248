package hcm

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"

	h2codec "github.com/sluice-proxy/sluice/gateway/codec/http2"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// h2stream is the HTTP/2 or HTTP/3 side of a stream: the request and
// response writer of one HTTP/2 (x/net/http2) or HTTP/3 (quic-go http3)
// stream. A stream with h2 set takes these paths of the codec seam (request
// body source, response head, data, trailers, 1xx); the HTTP/1 paths are
// untouched. Owned by the stream's goroutine (the server's handler
// goroutine).
type h2stream struct {
	proto    string // StreamInfo.Protocol: protoHTTP2 or protoHTTP3
	w        http.ResponseWriter
	r        *http.Request
	flusher  http.Flusher
	fieldBuf []byte // request field bytes (lowercased names, values)
	wrote    bool   // head or body bytes were written since the last flush
	tooEarly bool   // an HTTP/3 request in 0-RTT data that is not replay-safe: answer 425
	upgrade  string // a tunnel request: UpgradeRequested's answer (tunnel.go)
}

var h2streamPool = sync.Pool{New: func() any { return new(h2stream) }}

// protoHTTP2 is StreamInfo.Protocol of an HTTP/2 stream.
const protoHTTP2 = "HTTP/2"

// serveStream runs the HTTP/2 or HTTP/3 (proto) request r on connection c
// through the filter chain, answering on w. It reports whether the stream
// must be reset.
func serveStream(c *connection, w http.ResponseWriter, r *http.Request, proto string) (abort bool) {
	return serveStreamEarly(c, w, r, proto, false)
}

// serveStreamEarly is serveStream; with tooEarly the stream runs its filter
// chain's setup but answers 425 Too Early without running the filters.
func serveStreamEarly(c *connection, w http.ResponseWriter, r *http.Request, proto string, tooEarly bool) (abort bool) {
	s := streamPool.Get().(*stream)
	s.conn = c
	hs := h2streamPool.Get().(*h2stream)
	hs.proto, hs.w, hs.r, hs.tooEarly = proto, w, r, tooEarly
	hs.flusher, _ = w.(http.Flusher)
	s.h2 = hs
	abort = s.runH2()
	s.h2 = nil
	s.conn = nil
	*hs = h2stream{fieldBuf: hs.fieldBuf[:0]}
	h2streamPool.Put(hs)
	if len(s.posted) == 0 && cap(s.req.Headers.Fields) <= 256 {
		streamPool.Put(s)
	}
	return abort
}

// runH2 serves one HTTP/2 or HTTP/3 stream through the filter chain. It
// reports whether the stream must be reset.
func (s *stream) runH2() (abort bool) {
	hs := s.h2
	r := hs.r
	req := &s.req
	req.Upgrade = nil
	// The headers before begin, which reads them: the pooled stream's
	// request may still point into the field buffer of the stream it
	// served before, which another stream owns now. fillHeaders resets
	// them first (startFields).
	hs.fillHeaders(&req.Headers, r)
	// max_headers_count holds for every protocol, as in Envoy (the
	// HTTP/1.1 codec answers 431 itself); cookie crumbs were joined into
	// one field. Counted before decorate adds fields of its own.
	tooMany := regularFields(&req.Headers) > s.conn.f.cfg.MaxHeadersCount
	s.begin(req)
	s.info.Protocol = hs.proto
	if f := s.conn.f; f.underscores != underscoresAllow && !f.checkUnderscores(&req.Headers.Headers, protoIndex(hs.proto)) {
		// Envoy's codecs reset such a stream (http2., http3.)
		s.info.ResponseFlags |= httpfilter.FlagDownstreamProtocolError
		s.info.ResponseDetails = underscoreDetails[protoIndex(hs.proto)]
		s.reset = true
		s.end()
		return true
	}
	s.closeAfter = false
	h := s.h
	hs.h2Upgrade(h, r)
	pathReply, pathOK := s.normalizePath(h)
	s.decorate(h)
	s.startSpan(h)
	if pathOK {
		s.route, s.routeValid = s.conn.f.routes.Match(h), true
		s.decorateSpan(h)
		s.createFilters()
	}
	s.noBody = r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || hs.upgrade != ""
	s.bodyDone = s.noBody
	if s.noBody {
		s.info.DownstreamRequestEnd = s.info.Start
	}
	switch {
	case hs.tooEarly:
		// RFC 8470: a request that may not be replayed, received as
		// early data, is refused; the client retries it after the
		// handshake.
		s.SendLocalReply(httpfilter.LocalReply{Status: 425, Details: "too_early"})
	case tooMany:
		s.SendLocalReply(httpfilter.LocalReply{Status: 431, Flags: httpfilter.FlagDownstreamProtocolError,
			Details: tooManyHeaders(hs.proto)})
	case !pathOK:
		s.SendLocalReply(pathReply)
	default:
		s.advance()
	}
	if !s.noBody && !s.ended() {
		s.h2ReadBody()
	}
	s.awaitEnd()
	abort = s.reset || !s.respDone
	s.end() // logs, then destroys the filters
	return abort
}

// regularFields counts the request's fields but pseudo-fields (":protocol"
// rides among them).
func regularFields(h *httpfilter.RequestHeaders) int {
	n := 0
	for i := range h.Fields {
		if name := h.Fields[i].Name; len(name) == 0 || name[0] != ':' {
			n++
		}
	}
	return n
}

// tooManyHeaders is the response details of a request over
// max_headers_count: Envoy's "http2.too_many_headers", or http3's.
func tooManyHeaders(proto string) string {
	if proto == protoHTTP3 {
		return "http3.too_many_headers"
	}
	return "http2.too_many_headers"
}

// rawFields is implemented by the HTTP/2 codec's response writer (with
// its RawFields option): the request fields as decoded.
type rawFields interface {
	RequestFields() []hpack.HeaderField
}

// fieldsWriter is implemented by the HTTP/2 codec's response writer: the
// head and trailers as lists of fields, encoded without a header map.
type fieldsWriter interface {
	WriteHeaderFields(code int, fields []httpfilter.Field)
	WriteTrailerFields(fields []httpfilter.Field)
}

// fillHeaders converts the HTTP/2 or HTTP/3 request into h: pseudo-fields
// from the request, fields with lowercase names (HTTP/2 sends them
// lowercase; net/http canonicalised them). Cookies arrive joined by the
// HTTP/3 server; fillRawHeaders joins them for HTTP/2.
func (hs *h2stream) fillHeaders(h *httpfilter.RequestHeaders, r *http.Request) {
	if rf, ok := hs.w.(rawFields); ok {
		hs.fillRawHeaders(h, r, rf.RequestFields())
		return
	}
	n := 0
	for k, vv := range r.Header {
		for _, v := range vv {
			n += len(k) + len(v)
		}
	}
	b := hs.startFields(h, r, n)
	for k, vv := range r.Header {
		if k == "Host" {
			continue
		}
		start := len(b)
		b = appendLower(b, k)
		name := b[start:len(b):len(b)]
		for _, v := range vv {
			var val []byte
			b, val = appendSlice(b, v)
			h.Fields = append(h.Fields, httpfilter.Field{Name: name, Value: val})
		}
	}
	hs.fieldBuf = b
}

// fillRawHeaders is fillHeaders from the fields as the HTTP/2 codec decoded
// them: "host" is the authority's (RFC 9113 §8.3.1), and the cookie fields
// become one, joined with "; " (§8.2.3), after the others.
func (hs *h2stream) fillRawHeaders(h *httpfilter.RequestHeaders, r *http.Request, fields []hpack.HeaderField) {
	n := 0
	for i := range fields {
		n += len(fields[i].Name) + len(fields[i].Value) + 2
	}
	proto := r.Header[":protocol"]
	if len(proto) > 0 {
		n += len(":protocol") + len(proto[0])
	}
	b := hs.startFields(h, r, n)
	cookies := 0
	for i := range fields {
		switch f := &fields[i]; f.Name {
		case "host":
		case "cookie":
			cookies++
		default:
			var name, val []byte
			b, name = appendSlice(b, f.Name)
			b, val = appendSlice(b, f.Value)
			h.Fields = append(h.Fields, httpfilter.Field{Name: name, Value: val})
		}
	}
	if cookies > 0 {
		var name []byte
		b, name = appendSlice(b, "cookie")
		start := len(b)
		for i := range fields {
			if fields[i].Name == "cookie" {
				if len(b) > start {
					b = append(b, "; "...)
				}
				b = append(b, fields[i].Value...)
			}
		}
		h.Fields = append(h.Fields, httpfilter.Field{Name: name, Value: b[start:len(b):len(b)]})
	}
	if len(proto) > 0 {
		var name, val []byte
		b, name = appendSlice(b, ":protocol")
		b, val = appendSlice(b, proto[0])
		h.Fields = append(h.Fields, httpfilter.Field{Name: name, Value: val})
	}
	hs.fieldBuf = b
}

// startFields resets h, makes room in the field buffer for the request's
// pseudo-fields and fieldBytes more, and fills in method, authority and
// path; it returns the buffer to append the fields to.
func (hs *h2stream) startFields(h *httpfilter.RequestHeaders, r *http.Request, fieldBytes int) []byte {
	h.Reset()
	n := len(r.Method) + len(r.Host) + len(r.RequestURI) + fieldBytes
	b := hs.fieldBuf[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	b, h.Method = appendSlice(b, r.Method)
	b, h.Authority = appendSlice(b, r.Host)
	b, h.Path = appendSlice(b, r.RequestURI)
	return b
}

func appendSlice(b []byte, s string) ([]byte, []byte) {
	start := len(b)
	b = append(b, s...)
	return b, b[start:len(b):len(b)]
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// h2ReadBody reads the request body from the HTTP/2 or HTTP/3 stream and
// feeds the chain. Each read credits the client's flow-control window, so a
// chain that stops taking data stops the client. A read that waits longer
// than stream_idle_timeout ends the stream as on HTTP/1 (see bodyIdle).
func (s *stream) h2ReadBody() {
	r := s.h2.r
	if s.bodyBuf == nil {
		s.bodyBuf = make([]byte, bodyChunk)
	}
	var bi *bodyIdle
	if t := s.conn.f.cfg.StreamIdleTimeout.Duration; t > 0 {
		bi = newBodyIdle(t, s.h2.w)
		defer bi.stop()
	}
	// request_timeout: a past read deadline unblocks the read under way
	// once the whole request is overdue.
	var rqFired atomic.Bool
	if d := s.requestDeadline(); !d.IsZero() {
		rk := &readKiller{w: s.h2.w}
		t := time.AfterFunc(time.Until(d), func() {
			rqFired.Store(true)
			rk.kill()
		})
		defer func() {
			t.Stop()
			rk.stop()
		}()
	}
	for !s.ended() {
		if bi != nil {
			bi.reading()
		}
		n, err := r.Body.Read(s.bodyBuf)
		if rqFired.Load() && !s.respStarted {
			s.requestTimeout()
			return
		}
		if bi != nil && bi.done() {
			s.idleTimeout()
			return
		}
		if n > 0 {
			s.info.BytesReceived += int64(n)
			s.cur.Set(s.bodyBuf[:n])
			s.onData(&s.cur, false)
		}
		if err == io.EOF {
			s.requestEnded()
			if len(r.Trailer) > 0 {
				t := &httpfilter.Headers{}
				for k, vv := range r.Trailer {
					name := strings.ToLower(k)
					for _, v := range vv {
						t.Add(name, v)
					}
				}
				if !s.trailerUnderscores(t, protoIndex(s.info.Protocol)) {
					return
				}
				if t.Len() > 0 {
					s.trailers = t
					s.advance()
					return
				}
			}
			s.cur.Set(nil)
			s.onData(&s.cur, true)
			return
		}
		if err != nil {
			s.downstreamGone()
			return
		}
	}
}

// bodyIdle applies stream_idle_timeout to the request body reads of one
// HTTP/2 or HTTP/3 stream: one timer per stream that reads a body, not reset
// per read. A read stores its deadline; when the timer fires it re-arms for
// the deadline of the read under way (or, with no read under way, for a
// whole period), and once a read's deadline has passed it sets a past read
// deadline on the stream (http.ResponseController, which both the
// x/net/http2 and the quic-go http3 response writers implement), which
// unblocks the read with an error. The stream's goroutine then sees done.
// The time the stream spends passing data down the chain does not count, as
// on HTTP/1, where the read deadline is set before each read.
type bodyIdle struct {
	rk   readKiller
	idle time.Duration
	// deadline is when the read under way expires (nanoseconds since
	// idleEpoch, monotonic); 0: no read under way; expired: the timer
	// fired for it; stopped: the body is no longer read.
	deadline atomic.Int64
	timer    *time.Timer
}

const (
	bodyIdleExpired = -1
	bodyIdleStopped = -2
)

// idleEpoch is the origin of bodyIdle's monotonic clock.
var idleEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(idleEpoch)) }

func newBodyIdle(idle time.Duration, w http.ResponseWriter) *bodyIdle {
	b := &bodyIdle{idle: idle, rk: readKiller{w: w}}
	b.timer = time.AfterFunc(idle, b.fire)
	return b
}

// reading starts the clock of a read.
func (b *bodyIdle) reading() { b.deadline.Store(monoNow() + int64(b.idle)) }

// done ends the clock of a read and reports whether its deadline passed.
func (b *bodyIdle) done() bool {
	return b.deadline.Swap(0) == bodyIdleExpired
}

// stop ends the clock when the stream no longer reads its body. A fire
// running concurrently re-arms at most once more and then stops.
func (b *bodyIdle) stop() {
	b.deadline.Store(bodyIdleStopped)
	b.timer.Stop()
	b.rk.stop()
}

// fire runs on the timer's goroutine.
func (b *bodyIdle) fire() {
	for {
		d := b.deadline.Load()
		switch {
		case d < 0: // stopped, or already expired
			return
		case d == 0: // between reads: look again a period later
			b.timer.Reset(b.idle)
			return
		}
		if now := monoNow(); now < d {
			b.timer.Reset(time.Duration(d - now))
			return
		}
		if b.deadline.CompareAndSwap(d, bodyIdleExpired) {
			// A past deadline unblocks the pending read at once.
			b.rk.kill()
			return
		}
	}
}

// readKiller sets a past read deadline on a stream's response writer from
// a timer's goroutine, never once stop has returned: the stream's handler
// may have returned by then, and the x/net/http2 writer it returned with
// is nil inside (a deadline set on it would panic the process).
type readKiller struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	stopped bool
}

// kill sets a past read deadline, which unblocks the read under way, unless
// stop ran.
func (k *readKiller) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		_ = http.NewResponseController(k.w).SetReadDeadline(time.Unix(1, 0))
	}
}

// stop makes kill do nothing from now on; a kill under way ends first.
func (k *readKiller) stop() {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
}

// h2Head writes the response head on the HTTP/2 stream.
func (s *stream) h2Head(h *httpfilter.ResponseHeaders, end bool) error {
	s.respStarted = true
	s.resp = h
	s.info.ResponseCode = h.Status
	hs := s.h2
	if h.Status < 200 || h.Status > 999 {
		s.reset = true
		return errStreamEnded
	}
	if fw, ok := hs.w.(fieldsWriter); ok {
		fw.WriteHeaderFields(h.Status, h.Headers.Fields)
	} else {
		setH2Fields(hs.w.Header(), &h.Headers)
		hs.w.WriteHeader(h.Status)
	}
	hs.wrote = true // the head waits in the server's buffer until a flush
	if end {
		return s.h2Finish()
	}
	return nil
}

// setH2Fields copies fields into a response header map. The fields the
// x/net/http2 and quic-go response writers look up by their canonical
// names (content-length, content-type, date, content-encoding) go
// under those names, so that the writer sees them instead of adding its
// own: a sniffed content-type and a second date next to the upstream's,
// and after the handler returns, a second content-length. A response
// without a content-type gets none: the writer's sniffing is for origin
// servers, not for a proxy. Values share one string and one slice backing
// array (two allocations per head, not two per field).
func setH2Fields(hdr http.Header, f *httpfilter.Headers) {
	n, size := 0, 0
	for i := range f.Fields {
		if fl := &f.Fields[i]; !h2codec.ConnectionSpecific(fl.Name) {
			n++
			size += len(fl.Value)
		}
	}
	if n > 0 {
		var sb strings.Builder
		sb.Grow(size)
		for i := range f.Fields {
			if fl := &f.Fields[i]; !h2codec.ConnectionSpecific(fl.Name) {
				sb.Write(fl.Value)
			}
		}
		all := sb.String()
		vals := make([]string, n)
		j, off := 0, 0
		for i := range f.Fields {
			fl := &f.Fields[i]
			if h2codec.ConnectionSpecific(fl.Name) {
				continue
			}
			vals[j] = all[off : off+len(fl.Value)]
			off += len(fl.Value)
			k := h2FieldKey(fl.Name)
			if vv, ok := hdr[k]; ok {
				hdr[k] = append(vv, vals[j])
			} else {
				hdr[k] = vals[j : j+1 : j+1]
			}
			j++
		}
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // present, without a value: no sniffing
	}
}

// h2FieldKey is the header map key of a response field name: canonical for
// the names the response writers look up, a constant for common names (no
// allocation), else the lowercase name as it came.
func h2FieldKey(name []byte) string {
	switch string(name) {
	case "content-length":
		return "Content-Length"
	case "content-type":
		return "Content-Type"
	case "date":
		return "Date"
	case "content-encoding":
		return "Content-Encoding"
	case "trailer":
		return "trailer"
	case "server":
		return "server"
	case "cache-control":
		return "cache-control"
	case "etag":
		return "etag"
	case "last-modified":
		return "last-modified"
	case "vary":
		return "vary"
	case "location":
		return "location"
	case "set-cookie":
		return "set-cookie"
	case "alt-svc":
		return "alt-svc"
	case "x-envoy-upstream-service-time":
		return "x-envoy-upstream-service-time"
	}
	return string(name)
}

// h2Data writes a body chunk on the HTTP/2 stream. It blocks while the
// client's flow-control window is closed; flush sends what is pending.
func (s *stream) h2Data(data []byte, end, flush bool) error {
	hs := s.h2
	s.info.BytesSent += int64(len(data))
	if len(data) > 0 {
		if _, err := hs.w.Write(data); err != nil {
			s.downstreamGone()
			return errStreamEnded
		}
		hs.wrote = true
	}
	if end {
		return s.h2Finish()
	}
	if flush && hs.wrote && hs.flusher != nil {
		hs.wrote = false
		hs.flusher.Flush()
		if err := hs.r.Context().Err(); err != nil {
			s.downstreamGone()
			return errStreamEnded
		}
	}
	return nil
}

// h2Trailers ends the response with trailers.
func (s *stream) h2Trailers(t *httpfilter.Headers) error {
	if fw, ok := s.h2.w.(fieldsWriter); ok {
		fw.WriteTrailerFields(t.Fields)
		return s.h2Finish()
	}
	hdr := s.h2.w.Header()
	for i := range t.Fields {
		fl := &t.Fields[i]
		if h2codec.ConnectionSpecific(fl.Name) {
			continue
		}
		k := http.TrailerPrefix + string(fl.Name)
		hdr[k] = append(hdr[k], string(fl.Value))
	}
	return s.h2Finish()
}

// h2Finish marks the response complete. It does not flush: the server
// writes what the response writer holds and ends the stream when the
// handler returns, which follows at once (runH2), and then sends the head
// and a short body as HEADERS and one DATA frame with END_STREAM, where a
// flush here cost a round trip to the server's goroutine and a third,
// empty, DATA frame.
func (s *stream) h2Finish() error {
	s.respDone = true
	return nil
}

// h2Info1xx sends an informational head.
func (s *stream) h2Info1xx(h *httpfilter.ResponseHeaders) error {
	if h.Status == 101 || h.Status < 100 || h.Status > 199 {
		return nil
	}
	if fw, ok := s.h2.w.(fieldsWriter); ok {
		fw.WriteHeaderFields(h.Status, h.Headers.Fields)
		if err := s.h2.r.Context().Err(); err != nil {
			s.downstreamGone()
			return errStreamEnded
		}
		return nil
	}
	hdr := s.h2.w.Header()
	setH2Fields(hdr, &h.Headers)
	s.h2.w.WriteHeader(h.Status)
	clear(hdr)
	if err := s.h2.r.Context().Err(); err != nil {
		s.downstreamGone()
		return errStreamEnded
	}
	return nil
}

// Context returns the HTTP/2 request's context, done when the client resets
// the stream or the connection ends; nil for an HTTP/1 stream. The router
// uses it to abort the upstream request of a cancelled stream.
func (s *stream) Context() context.Context {
	if s.h2 == nil {
		return nil
	}
	return s.h2.r.Context()
}

// resetNotifier is implemented by the HTTP/2 codec's response writer.
type resetNotifier interface {
	AfterReset(f func()) (stop func() bool)
}

// AfterReset runs f on a goroutine of its own when the HTTP/2 or HTTP/3
// stream is reset or its connection ends, as context.AfterFunc on Context
// does (which it is for HTTP/3), without a context per call on HTTP/2.
func (s *stream) AfterReset(f func()) (stop func() bool) {
	if rn, ok := s.h2.w.(resetNotifier); ok {
		return rn.AfterReset(f)
	}
	return context.AfterFunc(s.h2.r.Context(), f)
}
