package hcm

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
)

// Encode path: encoder filters in reverse order, then the codec. Response
// bytes collect in the connection's write buffer and go out in one write at
// the end of the response, when the buffer passes flushAt, or when the
// terminal filter passes an empty non-final chunk (it is about to block
// waiting for more, so what is pending must reach the client now).

const flushAt = 16 << 10

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getWriteBuf() []byte { return (*writeBufs.Get().(*[]byte))[:0] }

func putWriteBuf(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	writeBufs.Put(&b)
}

// errStreamEnded tells a terminal filter that the downstream is gone or the
// stream was reset: stop and return.
type streamError string

func (e streamError) Error() string { return string(e) }

const errStreamEnded = streamError("hcm: stream ended")

// EncodeHeaders implements httpfilter.DecoderCallbacks.
func (s *stream) EncodeHeaders(h *httpfilter.ResponseHeaders, end bool) error {
	if s.ended() || s.respStarted {
		return errStreamEnded
	}
	var given []byte
	givenAt := -1
	for i := len(s.encoders) - 1; i >= 0; i-- {
		// Encoder-side stops are not supported yet: treat as continue.
		_ = s.encoders[i].EncodeHeaders(h, end)
		if end {
			if g, ok := s.encoders[i].(httpfilter.BodyGiver); ok {
				if b := g.GiveBody(); len(b) > 0 {
					given, givenAt, end = b, i, false
				}
			}
		}
	}
	if givenAt < 0 {
		return s.writeHead(h, end)
	}
	if err := s.writeHead(h, false); err != nil {
		return err
	}
	// The given body runs through the encoder filters after the giver,
	// as a copy: they may reuse the buffer's bytes.
	b := buffer.New(append([]byte(nil), given...))
	for i := givenAt - 1; i >= 0; i-- {
		s.encoders[i].EncodeData(b, true)
	}
	return s.writeBody(b.Bytes(), true, false)
}

func (s *stream) writeHead(h *httpfilter.ResponseHeaders, end bool) error {
	s.addAltSvc(h)
	if s.conn.f.tracer != nil {
		s.decorateResponse(h)
	}
	addDate(h)
	if f := s.conn.f; f.server != serverNone || f.via != nil {
		f.serverHeaders(h)
	}
	if s.conn.f.cfg.AlwaysSetRequestIDInResponse && s.h != nil {
		if v := s.h.Get("x-request-id"); v != nil {
			h.SetBytes(hdrRequestID, v)
		}
	}
	if s.h2 != nil {
		return s.h2Head(h, end)
	}
	c := s.conn
	req := &s.req
	s.respStarted = true
	s.resp = h
	s.info.ResponseCode = h.Status
	cl := int64(-1)
	if v := h.Get("content-length"); v != nil {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	f := http1.ContentLength
	switch {
	case string(req.Headers.Method) == "HEAD", h.Status == 204, h.Status == 304:
		f = http1.NoBody
		if h.Status == 204 {
			cl = -1
		}
	case cl >= 0:
	case end:
		cl = 0
	case req.Minor == 0:
		f = http1.NoBody // HTTP/1.0: the body runs until close
		s.closeAfter = true
	default:
		f = http1.Chunked
	}
	if !s.bodyDone {
		// An unread request body cannot be skipped safely: close after,
		// and say so, whether or not the response has a body (a gRPC
		// trailers-only reply has none): run keeps no connection whose
		// request body was not read to its end.
		s.closeAfter = true
	}
	if !c.c.CanHandoff() && c.c.DrainClose() {
		s.closeAfter = true
	}
	if !c.expires.IsZero() && c.pastDuration(time.Now()) {
		s.closeAfter = true // max_connection_duration
	}
	s.respFraming = f
	if f == http1.NoBody && req.Minor == 0 && cl < 0 && string(req.Headers.Method) != "HEAD" && h.Status != 204 && h.Status != 304 {
		s.respFraming = http1.UntilClose
	}
	s.headAt, s.headFlushes = len(c.w), c.flushes
	c.w = http1.AppendResponseHead(c.w, req.Major, req.Minor, h, f, cl, req.KeepAlive && !s.closeAfter)
	if end || s.respFraming == http1.NoBody {
		return s.finish()
	}
	return nil
}

// EncodeData implements httpfilter.DecoderCallbacks.
func (s *stream) EncodeData(b *buffer.Buffer, end bool) error {
	if s.ended() || !s.respStarted {
		return errStreamEnded
	}
	// An empty non-final chunk asks for a flush, whatever the encoder
	// filters make of it (a compressor turns it into the bytes it held).
	flush := b.Len() == 0 && !end
	for i := len(s.encoders) - 1; i >= 0; i-- {
		s.encoders[i].EncodeData(b, end)
	}
	return s.writeBody(b.Bytes(), end, flush)
}

// writeBody is writeData through the stream's pacers: each piece they let
// go is written and flushed before the next is asked for.
func (s *stream) writeBody(data []byte, end, flush bool) error {
	if len(s.pacers) == 0 || len(data) == 0 {
		return s.writeData(data, end, flush)
	}
	for len(data) > 0 {
		k := len(data)
		for _, p := range s.pacers {
			k = min(k, max(p.Pace(k), 1))
		}
		last := k == len(data)
		if err := s.writeData(data[:k], end && last, flush || !last); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}

// writeData passes response body bytes to the codec; flush sends what is
// pending now.
func (s *stream) writeData(data []byte, end, flush bool) error {
	if s.h2 != nil {
		return s.h2Data(data, end, flush)
	}
	c := s.conn
	s.info.BytesSent += int64(len(data))
	switch s.respFraming {
	case http1.Chunked:
		c.w = http1.AppendChunk(c.w, data)
		if end {
			c.w = http1.AppendLastChunk(c.w, nil)
		}
	case http1.NoBody:
	default:
		c.w = append(c.w, data...)
	}
	if end {
		return s.finish()
	}
	if flush || len(c.w) >= flushAt {
		if c.flush() != nil {
			s.downstreamGone()
			return errStreamEnded
		}
	}
	return nil
}

// EncodeTrailers implements httpfilter.DecoderCallbacks.
func (s *stream) EncodeTrailers(t *httpfilter.Headers) error {
	if s.ended() || !s.respStarted {
		return errStreamEnded
	}
	if v := t.Get("grpc-status"); v != nil {
		s.info.GRPCStatus, s.info.GRPCStatusSet = int16(grpcwire.ParseStatus(v)), true
	}
	// The trailers pass the encoder filters in order; at each, the body
	// bytes it adds (a BodyEnder's held bytes, a TrailersToBody's
	// trailers) first go on through the filters after it, so that they
	// reach the client before the trailers and after everything before.
	moved := false
	for i := len(s.encoders) - 1; i >= 0; i-- {
		e := s.encoders[i]
		if be, ok := e.(httpfilter.BodyEnder); ok {
			s.tail.Reset()
			be.EndBody(&s.tail)
			if err := s.passTail(i); err != nil {
				return err
			}
		}
		tb, ok := e.(httpfilter.TrailersToBody)
		if !ok {
			e.EncodeTrailers(t)
			continue
		}
		moved = true
		s.tail.Reset()
		tb.EncodeTrailersToBody(t, &s.tail)
		if err := s.passTail(i); err != nil {
			return err
		}
	}
	if moved && t.Len() == 0 {
		return s.writeData(nil, true, false) // the body carries the trailers
	}
	if s.h2 != nil {
		return s.h2Trailers(t)
	}
	if s.respFraming == http1.Chunked {
		s.conn.w = http1.AppendLastChunk(s.conn.w, t)
	}
	return s.finish()
}

// passTail sends the body bytes encoders[i] put in s.tail on through the
// encoder filters after it, then to the codec.
func (s *stream) passTail(i int) error {
	if s.tail.Len() == 0 {
		return nil
	}
	for j := i - 1; j >= 0; j-- {
		s.encoders[j].EncodeData(&s.tail, false)
	}
	return s.writeBody(s.tail.Bytes(), false, false)
}

// finish writes what is pending and marks the response complete.
func (s *stream) finish() error {
	s.respDone = true
	c := s.conn
	if s.h2 == nil && c.wor != nil && s.req.KeepAlive && !s.closeAfter && !s.reset && s.bodyDone &&
		len(c.w) > 0 && c.wor.CanWriteOnRead() {
		// The connection waits for the next request right after this:
		// the response goes out from inside that read (flushDeferred
		// writes it on any other way on).
		c.deferred = true
		return nil
	}
	if s.conn.flush() != nil {
		s.downstreamGone()
		return errStreamEnded
	}
	return nil
}

func (s *stream) encode1xx(h *httpfilter.ResponseHeaders) error {
	if s.ended() || s.respStarted {
		return errStreamEnded
	}
	if s.h2 != nil {
		return s.h2Info1xx(h)
	}
	c := s.conn
	if s.req.Minor == 0 {
		return nil // HTTP/1.0 clients do not understand 1xx
	}
	c.w = http1.AppendResponseHead(c.w, 1, 1, h, http1.NoBody, -1, true)
	if c.flush() != nil {
		s.downstreamGone()
		return errStreamEnded
	}
	return nil
}

// SendLocalReply implements httpfilter.DecoderCallbacks.
func (s *stream) SendLocalReply(r httpfilter.LocalReply) {
	s.info.ResponseFlags |= r.Flags
	s.info.ResponseDetails = r.Details
	if s.ended() {
		return
	}
	if s.respStarted && !s.unsendHead() {
		// Part of a response is out: the only honest signal is a reset.
		s.reset = true
		return
	}
	if s.sendingLocal {
		// A filter answered the stream's own local reply with another
		// (it replaced a body it sees again as the reply's): a reset,
		// not a recursion without end.
		s.reset = true
		return
	}
	s.sendingLocal = true
	defer func() { s.sendingLocal = false }()
	body := r.Body
	if body == "" && r.Status >= 400 {
		body = localBody(r)
	}
	grpc := s.h != nil && grpcwire.IsGRPC(s.h.Get("content-type"))
	if lr := s.conn.f.localReply; lr != nil {
		body = lr.rewrite(s, &r, body, grpc)
	}
	if grpc {
		// A gRPC client reads errors from grpc-status, not from the
		// HTTP status: it gets a trailers-only response.
		grpcReplyHeaders(&s.local, &r, body, string(s.h.Method) == "HEAD")
		_ = s.EncodeHeaders(&s.local, true)
		return
	}
	s.localBody.Reset()
	s.localBody.AppendString(body)
	localReplyHeaders(&s.local, &r, s.localBody.Bytes())
	if s.EncodeHeaders(&s.local, s.localBody.Len() == 0) != nil || s.localBody.Len() == 0 {
		return
	}
	_ = s.EncodeData(&s.localBody, true)
}

// grpcReplyHeaders builds into h the gRPC trailers-only response that
// stands for the local reply r to a gRPC request, as Envoy's
// Http::Utility::sendLocalReply does: status 200, content-type
// application/grpc, grpc-status mapped from r's status (unless r's own
// headers carry one), grpc-message the body text percent-encoded (without
// its final newline; none for a HEAD request), and no body. r's other
// headers come along, less the framing ones and its content-type.
func grpcReplyHeaders(h *httpfilter.ResponseHeaders, r *httpfilter.LocalReply, body string, head bool) {
	h.Reset()
	h.Status = 200
	h.AddBytes(hdrContentType, grpcwire.ContentTypeValue)
	ownStatus := false
	for _, f := range r.Headers {
		switch {
		case localReplyFraming(f.Name), bytes.EqualFold(f.Name, hdrContentType):
			continue
		case bytes.EqualFold(f.Name, grpcwire.StatusHeader):
			ownStatus = true
		}
		h.Fields = append(h.Fields, f)
	}
	if !ownStatus {
		h.AddBytes(grpcwire.StatusHeader, strconv.AppendInt(nil, int64(grpcwire.FromHTTP(r.Status)), 10))
	}
	body = strings.TrimSuffix(body, "\n")
	if body != "" && !head {
		h.SetBytes(grpcwire.MessageHeader, grpcwire.AppendMessage(nil, body))
	}
}

// unsendHead takes back an HTTP/1 response none of whose bytes has left
// (its head and any body are still in the connection's write buffer), so
// that a local reply can take its place: an upstream that fails after its
// response head but before anything was written gets the client a 502 or
// 503 (whatever the router answers),
// not an empty reply. It reports whether it did. The connection closes
// after the reply: the upstream's failure may have left the request's
// body unread.
func (s *stream) unsendHead() bool {
	c := s.conn
	if s.h2 != nil || c.flushes != s.headFlushes || len(c.w) < s.headAt {
		return false
	}
	c.w = c.w[:s.headAt]
	s.respStarted = false
	s.resp = nil
	s.closeAfter = true
	return true
}

// localBody is the short plain-text body of a generated error.
func localBody(r httpfilter.LocalReply) string {
	txt := http1.StatusText(r.Status)
	if r.Details != "" {
		txt += " (" + r.Details
		if r.Flags != 0 {
			txt += ", " + r.Flags.String()
		}
		txt += ")"
	}
	return txt + "\n"
}

// badRequest answers a request whose head failed to parse, then the
// connection closes. No filter runs: there is no valid request to run them on.
func (s *stream) badRequest(pe *http1.Error) {
	s.conn.f.stats.DownstreamCxProtocolError.Inc()
	s.headReply(httpfilter.LocalReply{Status: pe.Status, Flags: httpfilter.FlagDownstreamProtocolError, Details: "http1.codec_error"})
}

// headersTimeout answers 408 on a connection whose request head did not
// arrive within request_headers_timeout, then the connection closes (Envoy's
// response code details "request_header_timeout").
func (s *stream) headersTimeout() {
	s.conn.f.stats.DownstreamRqHeaderTimeout.Inc()
	s.headReply(httpfilter.LocalReply{Status: 408, Details: "request_header_timeout"})
}

// headReply writes the local reply r on a connection whose request head
// could not be read, as HTTP/1.1 with a text body, before it closes. The
// request counts in downstream_rq_total and its class, and is written to
// the access logs, as Envoy's stream exists from the request's first byte:
// without request headers (its head never made it whole), with the
// protocol once the request line was read.
func (s *stream) headReply(r httpfilter.LocalReply) {
	c := s.conn
	s.begin(&s.req)
	s.h = nil
	if s.req.Major == 0 { // not even the request line was read
		s.info.Protocol = ""
	}
	s.info.ResponseCode = r.Status
	s.info.ResponseFlags |= r.Flags
	s.info.ResponseDetails = r.Details
	body := localBody(r)
	s.local.Reset()
	if lr := c.f.localReply; lr != nil {
		body = lr.rewrite(s, &r, body, false)
		for _, f := range r.Headers {
			if !localReplyFraming(f.Name) {
				s.local.Fields = append(s.local.Fields, f)
			}
		}
		s.info.ResponseCode = r.Status
	} else {
		s.local.AddBytes(hdrContentType, textPlain)
	}
	s.local.Status = r.Status
	addDate(&s.local)
	if f := c.f; f.server != serverNone || f.via != nil {
		f.serverHeaders(&s.local)
	}
	c.w = http1.AppendResponseHead(c.w[:0], 1, 1, &s.local, http1.ContentLength, int64(len(body)), false)
	c.w = append(c.w, body...)
	_ = c.flush()
	s.resp = &s.local
	s.info.BytesSent = int64(len(body))
	s.end()
	c.linger = true // the rest of the request is still coming, or unread
}
