package cors

import (
	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Factory is a built CORS filter: its policy and counters. It is
// immutable (but for its stats) and safe for concurrent use.
type Factory struct {
	*policy
	valid, invalid *stats.Counter
}

// policy is a compiled CORS policy: the filter's, or one of a
// typed_per_filter_config table, which replaces it on its routes. It is
// immutable.
type policy struct {
	origins                  []originMatcher
	methods, headers, expose string
	maxAge                   string
	credentials, forward     bool
	// set says which keys the table set (set* bits): a per-route policy
	// takes the others from a less specific level's (MergePerRoute).
	set uint8
}

// The keys of a policy, in policy.set.
const (
	setOrigins uint8 = 1 << iota
	setMethods
	setHeaders
	setExpose
	setMaxAge
	setCredentials
	setForward
)

// MergePerRoute implements registry.PerRouteMerger, as Envoy's CORS filter
// reads its route's, virtual host's and route table's policies: each key
// comes from the most specific policy that sets it (an unset one keeps its
// default, not the filter's). p is not modified; the result is new.
func (p *policy) MergePerRoute(lessSpecific any) any {
	less, ok := lessSpecific.(*policy)
	if !ok {
		return p
	}
	m := *p
	take := func(bit uint8) bool { return m.set&bit == 0 && less.set&bit != 0 }
	if take(setOrigins) {
		m.origins = less.origins
	}
	if take(setMethods) {
		m.methods = less.methods
	}
	if take(setHeaders) {
		m.headers = less.headers
	}
	if take(setExpose) {
		m.expose = less.expose
	}
	if take(setMaxAge) {
		m.maxAge = less.maxAge
	}
	if take(setCredentials) {
		m.credentials = less.credentials
	}
	if take(setForward) {
		m.forward = less.forward
	}
	m.set |= less.set
	return &m
}

// NewFilter implements httpfilter.Factory.
func (fa *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{fa: fa, cb: cb}
}

// allowed reports whether origin is allowed.
func (p *policy) allowed(origin []byte) bool {
	for i := range p.origins {
		if p.origins[i].match(origin) {
			return true
		}
	}
	return false
}

// filter is one stream's CORS handling. Its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	fa *Factory
	cb httpfilter.DecoderCallbacks
	// p is the policy of the request's route (set with origin).
	p *policy
	// origin is the request's allowed Origin (the request's own field,
	// which lives as long as the stream), or nil when the request is not a
	// CORS request of an allowed origin; preflight marks an answered
	// preflight.
	origin    []byte
	preflight bool
}

var _ httpfilter.DecoderFilter = (*filter)(nil)
var _ httpfilter.EncoderFilter = (*filter)(nil)

// DecodeHeaders implements httpfilter.DecoderFilter: it checks the Origin
// and answers an allowed origin's preflight.
func (f *filter) DecodeHeaders(h *httpfilter.RequestHeaders, endStream bool) httpfilter.HeadersStatus {
	o := h.Get("origin")
	if o == nil {
		return httpfilter.HeadersContinue
	}
	preflight := string(h.Method) == "OPTIONS" && h.Has("access-control-request-method")
	p := f.fa.policy
	if r := f.cb.Route(); r != nil {
		if rp, ok := r.PerFilterConfig(Name).(*policy); ok {
			p = rp
		}
	}
	if !p.allowed(o) {
		f.fa.invalid.Inc()
		if preflight && !p.forward {
			f.cb.SendLocalReply(httpfilter.LocalReply{Status: 200, Details: "cors_preflight_origin_not_allowed"})
			return httpfilter.HeadersStopIteration
		}
		return httpfilter.HeadersContinue
	}
	f.fa.valid.Inc()
	f.origin, f.p = o, p
	if preflight {
		f.preflight = true
		f.cb.SendLocalReply(httpfilter.LocalReply{Status: 200, Details: "cors_preflight"})
		return httpfilter.HeadersStopIteration
	}
	return httpfilter.HeadersContinue
}

// DecodeData implements httpfilter.DecoderFilter.
func (f *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (f *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// EncodeHeaders implements httpfilter.EncoderFilter: an allowed origin's
// response (or preflight answer) gets the access-control-* headers.
func (f *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, endStream bool) httpfilter.HeadersStatus {
	if f.origin == nil {
		return httpfilter.HeadersContinue
	}
	fa := f.p
	h.SetBytes(hdrAllowOrigin, f.origin)
	if fa.credentials {
		h.Set("access-control-allow-credentials", "true")
	}
	if f.preflight {
		if fa.methods != "" {
			h.Set("access-control-allow-methods", fa.methods)
		}
		if fa.headers != "" {
			h.Set("access-control-allow-headers", fa.headers)
		}
		if fa.maxAge != "" {
			h.Set("access-control-max-age", fa.maxAge)
		}
	} else if fa.expose != "" {
		h.Set("access-control-expose-headers", fa.expose)
	}
	h.Add("vary", "origin") // the answer depends on the Origin: caches must keep the variants apart
	return httpfilter.HeadersContinue
}

// EncodeData implements httpfilter.EncoderFilter.
func (f *filter) EncodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// EncodeTrailers implements httpfilter.EncoderFilter.
func (f *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter.
func (f *filter) OnDestroy() {}

var hdrAllowOrigin = []byte("access-control-allow-origin")
