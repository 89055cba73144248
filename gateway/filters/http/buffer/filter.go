package buffer

import (
	"strconv"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// Factory is a built buffer filter. It is immutable and safe for
// concurrent use.
type Factory struct {
	max int // max_request_bytes
}

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{max: f.max, cb: cb}
}

// filter is one stream's instance; its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	max       int
	cb        httpfilter.DecoderCallbacks
	h         *httpfilter.RequestHeaders // while buffering
	n         int                        // body bytes held so far
	buffering bool
}

// tooLarge answers 413, as Envoy's connection manager does when a
// buffering filter's limit is passed.
func (fl *filter) tooLarge() {
	fl.buffering = false
	fl.cb.SendLocalReply(httpfilter.LocalReply{Status: 413, Body: "Payload Too Large\n", Details: "request_payload_too_large"})
}

// DecodeHeaders implements httpfilter.DecoderFilter: a request with a body
// parks the chain here until the body has arrived whole. One whose
// Content-Length is over the limit is answered 413 at once.
func (fl *filter) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	if end {
		return httpfilter.HeadersContinue
	}
	if r := fl.cb.Route(); r != nil {
		if r.FilterDisabled(Name) {
			return httpfilter.HeadersContinue
		}
		if pr, ok := r.PerFilterConfig(Name).(*perRoute); ok {
			if pr.disabled {
				return httpfilter.HeadersContinue
			}
			fl.max = pr.max
		}
	}
	if v := h.Get("content-length"); v != nil {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n > int64(fl.max) {
			fl.tooLarge()
			return httpfilter.HeadersStopIteration
		}
	}
	if bl, ok := fl.cb.(httpfilter.BufferLimiter); ok {
		bl.SetDecoderBufferLimit(fl.max)
	}
	fl.h, fl.buffering = h, true
	return httpfilter.HeadersStopIteration
}

// DecodeData implements httpfilter.DecoderFilter: the manager holds each
// chunk until the last, which releases the request with a Content-Length
// (Envoy's buffer filter sets one when the request had none).
func (fl *filter) DecodeData(b *buffer.Buffer, end bool) httpfilter.DataStatus {
	if !fl.buffering {
		return httpfilter.DataContinue
	}
	fl.n += b.Len()
	if fl.n > fl.max {
		fl.tooLarge()
		return httpfilter.DataStopNoBuffer
	}
	if !end {
		return httpfilter.DataStopAndBuffer
	}
	fl.buffering = false
	if fl.h.Get("content-length") == nil {
		fl.h.Set("content-length", strconv.Itoa(fl.n))
	}
	fl.h = nil
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter: trailers end the
// body, which goes on as it came (chunked, with its trailers).
func (fl *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	fl.buffering, fl.h = false, nil
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter.
func (fl *filter) OnDestroy() { fl.h = nil }

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
)
