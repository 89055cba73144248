package csrf

import (
	"bytes"
	"math/rand/v2"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// policy is a compiled CSRF policy: the filter's or a route's. It is
// immutable.
type policy struct {
	enabled, shadow int // percentages
	origins         []rbacmatch.Matcher
}

// on reports whether a percentage samples this request in.
func on(percent int) bool {
	return percent >= 100 || percent > 0 && rand.IntN(100) < percent
}

// Factory is a built CSRF filter: its policy and counters. It is immutable
// (but for its stats) and safe for concurrent use.
type Factory struct {
	policy                  *policy
	missing, invalid, valid *stats.Counter
}

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{fa: f, cb: cb}
}

// filter is one stream's instance.
type filter struct {
	fa *Factory
	cb httpfilter.DecoderCallbacks
}

// Details is the %RESPONSE_CODE_DETAILS% of a rejected request, Envoy's.
const Details = "csrf_origin_mismatch"

// isModify reports whether method changes state: Envoy's list.
func isModify(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "DELETE", "PATCH":
		return true
	}
	return false
}

// DecodeHeaders implements httpfilter.DecoderFilter, as Envoy's
// CsrfFilter::decodeHeaders.
func (fl *filter) DecodeHeaders(h *httpfilter.RequestHeaders, _ bool) httpfilter.HeadersStatus {
	p := fl.fa.policy
	if r := fl.cb.Route(); r != nil {
		if rp, ok := r.PerFilterConfig(Name).(*policy); ok {
			p = rp
		}
	}
	enforce := on(p.enabled)
	if !enforce && !on(p.shadow) || !isModify(h.Method) {
		return httpfilter.HeadersContinue
	}
	valid := true
	src := SourceOrigin(h.Get("origin"), h.Get("referer"))
	if len(src) == 0 {
		valid = false
		fl.fa.missing.Inc()
	}
	if !p.allows(src, TargetOrigin(h.Authority)) {
		valid = false
		fl.fa.invalid.Inc()
	}
	if valid {
		fl.fa.valid.Inc()
		return httpfilter.HeadersContinue
	}
	if !enforce {
		return httpfilter.HeadersContinue
	}
	fl.cb.SendLocalReply(httpfilter.LocalReply{Status: 403, Body: "Invalid origin", Details: Details})
	return httpfilter.HeadersStopIteration
}

// allows reports whether source origin src may send to target origin dst:
// they are the same host[:port] (ASCII case-insensitively), or src matches
// an additional origin.
func (p *policy) allows(src, dst []byte) bool {
	if bytes.EqualFold(src, dst) {
		return true
	}
	for i := range p.origins {
		if p.origins[i].Match(src) {
			return true
		}
	}
	return false
}

// DecodeData implements httpfilter.DecoderFilter.
func (fl *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (fl *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter.
func (fl *filter) OnDestroy() {}

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
)
