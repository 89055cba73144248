package hcm

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// Decode iteration.
//
// Headers go down the chain until a non-terminal filter returns a Stop
// status: the chain is parked at that filter (parkAt). While parked, body
// data still reaches the filters that saw the headers (all but the parked
// one after HeadersStopAllAndBuffer); what gets past them is held by the
// manager. A filter returning DataStopAndBuffer makes the manager hold the
// data at that filter until the filter returns DataContinue for a later
// chunk or calls ContinueDecoding; DataContinue from the filter that parked
// the headers resumes the headers too. Held data goes on as soon as the
// data limit lets it, also to a filter parked on the headers. Held data
// never exceeds the connection's buffer limit (or the one a filter set,
// httpfilter.BufferLimiter): past it the request gets 413.

const bodyChunk = 32 << 10

// advance delivers what is pending (headers, held data, trailers) as far
// down the chain as it goes.
func (s *stream) advance() {
	n := len(s.decoders)
	for !s.ended() {
		if s.parkAt < 0 && s.hdrsTo < n {
			i := s.hdrsTo
			s.hdrsTo++
			st := s.decoders[i].DecodeHeaders(s.h, s.noBody)
			if st != httpfilter.HeadersContinue && i < n-1 && !s.ended() {
				s.parkAt = i
				s.stopAll = st == httpfilter.HeadersStopAllAndBuffer
			}
			continue
		}
		// Held data goes on as far as data may go now: also to a filter
		// that parked the headers after the data was held (the buffer
		// filter after ext_authz with the body), which waits for it.
		if s.heldAt >= 0 && !s.holdBlocked && s.heldAt < s.dataLimit() {
			from := s.heldAt
			s.heldAt = -1
			s.push(&s.held, from, s.heldEnd)
			continue
		}
		if !s.pushTrailers() {
			return
		}
	}
}

// pushTrailers delivers the trailers to the next filter that has the whole
// body (also while the chain is parked, as data is: a filter holding the
// body until its end gets the trailers, and continuing from them releases
// what it holds). It reports whether it delivered them to a filter.
func (s *stream) pushTrailers() bool {
	n := len(s.decoders)
	limit := n
	if s.parkAt >= 0 {
		limit = s.dataLimit()
	}
	if s.heldAt >= 0 && s.heldAt < limit {
		limit = s.heldAt
	}
	if s.trailers == nil || s.trailersTo >= limit {
		return false
	}
	i := s.trailersTo
	s.trailersTo++
	st := s.decoders[i].DecodeTrailers(s.trailers)
	switch {
	case s.ended():
	case st != httpfilter.TrailersContinue:
		if i < n-1 && s.parkAt < 0 {
			s.parkAt = i
		}
	default: // continuing from the trailers resumes what the filter stopped
		if i == s.parkAt {
			s.parkAt = -1
		}
		if s.holdBlocked && i == s.heldAt-1 {
			s.holdBlocked = false
		}
	}
	return true
}

// dataLimit is how many filters may see body data now.
func (s *stream) dataLimit() int {
	if s.parkAt < 0 {
		return s.hdrsTo
	}
	if s.stopAll {
		return s.parkAt
	}
	return s.parkAt + 1
}

// onData passes one body chunk down the chain.
func (s *stream) onData(b *buffer.Buffer, end bool) {
	s.push(b, 0, end)
	s.advance()
}

// push delivers b, with end, to decoders[from:] up to the data limit, and
// holds what the chain does not take yet. Held data (b == &s.held) goes to
// the filters as a view, s.heldView: a filter may put its own storage in
// the buffer it is passed (grpc_web decoding a grpc-web-text body), and
// s.held, which later chunks are appended to, must never keep storage that
// the filter writes its next output into.
func (s *stream) push(b *buffer.Buffer, from int, end bool) {
	if b != &s.held {
		s.pushData(b, from, end, false)
		return
	}
	s.heldView.Set(s.held.Bytes())
	s.pushData(&s.heldView, from, end, true)
	s.heldView.Set(nil)
}

// pushData is push; held says b is the view of the held data.
func (s *stream) pushData(b *buffer.Buffer, from int, end, held bool) {
	to := s.dataLimit()
	if !held && s.heldAt >= 0 && s.heldAt < to {
		to = s.heldAt
	}
	for i := from; i < to; i++ {
		st := s.decoders[i].DecodeData(b, end)
		if s.ended() {
			return
		}
		switch st {
		case httpfilter.DataStopAndBuffer:
			s.hold(b, i+1, end, held)
			s.holdBlocked = true
			return
		case httpfilter.DataStopNoBuffer:
			if held {
				s.held.Reset()
			}
			return
		case httpfilter.DataContinue:
			if i == s.parkAt {
				s.parkAt = -1
			}
			if s.holdBlocked && i == s.heldAt-1 {
				s.holdBlocked = false
			}
		}
	}
	if to >= len(s.decoders) {
		if held {
			s.held.Reset()
		}
		return
	}
	s.hold(b, to, end, held)
}

// hold keeps b's bytes for decoders[at:]: appended to what is held, or,
// when b is the view of the held data (held), in its place.
func (s *stream) hold(b *buffer.Buffer, at int, end, held bool) {
	switch v := b.Bytes(); {
	case !held:
		s.held.Append(v)
	case len(v) == s.held.Len() && (len(v) == 0 || &v[0] == &s.held.Bytes()[0]):
		// the filters left the held bytes as they were
	default:
		// Copied into s.held's own storage (v may overlap it: the copy
		// is a move).
		s.held.Reset()
		s.held.Append(v)
	}
	if s.heldAt < 0 || at < s.heldAt {
		s.heldAt = at
	}
	s.heldEnd = end
	limit := s.conn.bufferLimit()
	if s.heldLimit > 0 {
		limit = s.heldLimit
	}
	if s.held.Len() > limit {
		s.SendLocalReply(httpfilter.LocalReply{Status: 413, Details: "request_payload_too_large"})
	}
}

// readBody reads the request body from the codec and feeds the chain.
func (s *stream) readBody() {
	c := s.conn
	req := &s.req
	if req.ExpectContinue && !s.respStarted {
		c.w = append(c.w, "HTTP/1.1 100 Continue\r\n\r\n"...)
		if c.flush() != nil {
			s.downstreamGone()
			return
		}
	}
	if s.bodyBuf == nil {
		s.bodyBuf = make([]byte, bodyChunk)
	}
	body := c.r.BodyReader(req.Framing, req.ContentLength)
	remaining := req.ContentLength
	idle := c.f.cfg.StreamIdleTimeout.Duration
	rqd := s.requestDeadline()
	for !s.ended() {
		if (idle > 0 || !rqd.IsZero()) && len(c.r.Buffered()) == 0 {
			var d time.Time
			if idle > 0 {
				d = time.Now().Add(idle)
			}
			if !rqd.IsZero() && !s.respStarted && (d.IsZero() || rqd.Before(d)) {
				d = rqd
			}
			c.setReadDeadline(d)
		}
		n, err := body.Read(s.bodyBuf)
		end := false
		if req.Framing == http1.ContentLength {
			remaining -= int64(n)
			end = remaining == 0
		}
		if n > 0 || end {
			s.info.BytesReceived += int64(n)
			s.cur.Set(s.bodyBuf[:n])
			if end {
				s.requestEnded()
			}
			s.onData(&s.cur, end)
			if end {
				return
			}
		}
		if err == io.EOF {
			s.requestEnded()
			if t := body.Trailers(); t != nil && t.Len() > 0 {
				if !s.trailerUnderscores(t, 0) {
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
			var pe *http1.Error
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if !rqd.IsZero() && !s.respStarted && !time.Now().Before(rqd) {
					s.requestTimeout()
				} else {
					s.idleTimeout()
				}
				return
			}
			if errors.As(err, &pe) {
				s.info.ResponseFlags |= httpfilter.FlagDownstreamProtocolError
				s.SendLocalReply(httpfilter.LocalReply{Status: pe.Status, Details: "http1.codec_error"})
				s.closeAfter = true
				return
			}
			s.downstreamGone()
			return
		}
	}
}

// awaitEnd waits, while the chain is parked, for filters to continue it
// through Post.
func (s *stream) awaitEnd() {
	for !s.ended() && (s.parkAt >= 0 || s.holdBlocked) {
		if s.posted == nil {
			s.reset = true // nothing can ever continue the chain
			return
		}
		t := s.conn.f.cfg.StreamIdleTimeout.Duration
		// request_timeout runs while a filter before the router holds the
		// request (the router's own waits are for the upstream).
		rqd := s.requestDeadline()
		if rqd.IsZero() || s.respStarted || !(s.holdBlocked || s.parkAt >= 0 && s.parkAt < len(s.decoders)-1) {
			rqd = time.Time{}
		}
		if !rqd.IsZero() && (t <= 0 || time.Until(rqd) < t) {
			t = max(time.Until(rqd), 0)
		}
		if t <= 0 && rqd.IsZero() {
			fn := <-s.posted
			fn()
			s.advance()
			continue
		}
		timer := time.NewTimer(t)
		select {
		case fn := <-s.posted:
			timer.Stop()
			fn()
			s.advance()
		case <-timer.C:
			if !rqd.IsZero() && !time.Now().Before(rqd) {
				s.requestTimeout()
			} else {
				s.idleTimeout()
			}
		}
	}
	if !s.ended() {
		s.reset = true // the terminal filter returned without a response
	}
}

// idleTimeout ends the stream when stream_idle_timeout passed with nothing
// moving: 408 before the response started, a reset after (Envoy's
// behaviour, flag SI).
func (s *stream) idleTimeout() {
	s.SendLocalReply(httpfilter.LocalReply{Status: 408, Flags: httpfilter.FlagStreamIdleTimeout, Details: "stream_idle_timeout"})
	s.closeAfter = true
}

// requestDeadline is when request_timeout ends the stream, zero without
// one.
func (s *stream) requestDeadline() time.Time {
	t := s.conn.f.cfg.RequestTimeout.Duration
	if t <= 0 {
		return time.Time{}
	}
	return s.info.Start.Add(t)
}

// requestTimeout answers 408 when the whole request did not arrive within
// request_timeout (Envoy's onRequestTimeout: details
// request_overall_timeout, counted in downstream_rq_timeout).
func (s *stream) requestTimeout() {
	s.conn.f.stats.DownstreamRqTimeout.Inc()
	s.SendLocalReply(httpfilter.LocalReply{Status: 408, Details: "request_overall_timeout"})
	s.closeAfter = true
}

// StreamIdleTimeout implements httpfilter.StreamIdler.
func (s *stream) StreamIdleTimeout() time.Duration {
	return s.conn.f.cfg.StreamIdleTimeout.Duration
}

func (s *stream) downstreamGone() {
	s.info.ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
	s.reset = true
}

// httpfilter.DecoderCallbacks

func (s *stream) StreamID() uint64                                     { return s.id }
func (s *stream) ConnectionID() uint64                                 { return s.conn.info.ID }
func (s *stream) Info() *httpfilter.StreamInfo                         { return &s.info }
func (s *stream) ClearRouteCache()                                     { s.routeValid = false }
func (s *stream) Encode1xxHeaders(h *httpfilter.ResponseHeaders) error { return s.encode1xx(h) }

func (s *stream) Route() httpfilter.Route {
	if !s.routeValid {
		s.route, s.routeValid = s.conn.f.routes.Match(s.h), true
	}
	return s.route
}

func (s *stream) ContinueDecoding() {
	s.parkAt = -1
	s.holdBlocked = false
}

// Post queues fn for the stream's goroutine. The queue is the connection's:
// a function posted after its stream ended runs in the next stream's wait,
// so filters must not Post after OnDestroy.
func (s *stream) Post(fn func()) {
	s.posted <- fn
}

// ResetStream implements httpfilter.StreamResetter.
func (s *stream) ResetStream() { s.reset = true }

// SetDecoderBufferLimit implements httpfilter.BufferLimiter.
func (s *stream) SetDecoderBufferLimit(n int) { s.heldLimit = n }
