package localratelimit

import (
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Stats are the filter's counters, Envoy's
// http_local_rate_limit.<stat_prefix>.{enabled,ok,rate_limited,enforced}.
type Stats struct {
	// Enabled: requests the filter saw.
	Enabled *stats.Counter
	// OK: requests within the limit.
	OK *stats.Counter
	// RateLimited: requests over the limit; Enforced: those answered with
	// the limit's status (all of them: there is no shadow mode).
	RateLimited, Enforced *stats.Counter
}

// statNames are the counters' names under http_local_rate_limit.<prefix>.,
// in the order of the Stats fields.
var statNames = []string{"enabled", "ok", "rate_limited", "enforced"}

// newStats resolves the counters in slab (a nil slab gives private ones).
func newStats(slab *stats.Slab, prefix string) Stats {
	c := func(i int) *stats.Counter { return slab.Counter(statScope(prefix) + statNames[i]) }
	return Stats{Enabled: c(0), OK: c(1), RateLimited: c(2), Enforced: c(3)}
}

func statScope(prefix string) string { return "http_local_rate_limit." + prefix + "." }

// StatDefs implements stats.FilterStats. Envoy puts these stats under
// their own prefix, not the connection manager's scope.
func (c *Config) StatDefs(string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: statScope(c.StatPrefix) + n, Kind: stats.KindCounter}
	}
	return defs
}

// PerRouteStatDefs implements stats.PerRouteStats: a per-route table's
// counters, under its own stat_prefix.
func (c *Config) PerRouteStatDefs() []stats.Def { return c.StatDefs("") }

// Factory is a built local_ratelimit. It is immutable (but for its stats)
// and safe for concurrent use.
type Factory struct {
	statPrefix string
	status     int
	headers    bool
	def        *hoststate.Buckets
	descs      []descriptor
	now        func() time.Time

	stats Stats
}

type descriptor struct {
	header  string
	source  bool
	value   []byte
	buckets *hoststate.Buckets
}

// StatPrefix returns stat_prefix.
func (f *Factory) StatPrefix() string { return f.statPrefix }

// Stats returns the factory's counters.
func (f *Factory) Stats() *Stats { return &f.stats }

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{f: f, cb: cb}
}

// filter is one stream's instance; its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	f  *Factory
	cb httpfilter.DecoderCallbacks

	// Set by DecodeHeaders for EncodeHeaders.
	limit, remaining uint32
	reset            time.Duration
	decided          bool
}

// pick returns the bucket set and index of a request.
func (l *filter) pick(h *httpfilter.RequestHeaders) (*hoststate.Buckets, int) {
	for i := range l.f.descs {
		d := &l.f.descs[i]
		if d.source {
			a := l.cb.Info().DownstreamRemote.Addr().As16()
			return d.buckets, int(fnv(a[:]) % uint64(d.buckets.Len()))
		}
		v := h.Get(d.header)
		if v == nil {
			continue
		}
		if len(d.value) > 0 {
			if string(v) == string(d.value) {
				return d.buckets, 0
			}
			continue
		}
		return d.buckets, int(fnv(v) % uint64(d.buckets.Len()))
	}
	return l.f.def, 0
}

// fnv is FNV-1a: the same in every process, unlike hash/maphash.
func fnv(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// httpfilter.DecoderFilter

// DecodeHeaders implements httpfilter.DecoderFilter: it takes a token, or
// ends the stream with the configured status.
func (l *filter) DecodeHeaders(h *httpfilter.RequestHeaders, _ bool) httpfilter.HeadersStatus {
	if r := l.cb.Route(); r != nil {
		if rf, ok := r.PerFilterConfig(Name).(*Factory); ok {
			l.f = rf // the route's own limit, buckets and counters
		}
	}
	f := l.f
	f.stats.Enabled.Inc()
	b, i := l.pick(h)
	ok, rem, reset := b.Take(i, 1, f.now())
	l.limit, l.remaining, l.reset, l.decided = b.Spec().MaxTokens, rem, reset, true
	if ok {
		f.stats.OK.Inc()
		return httpfilter.HeadersContinue
	}
	f.stats.RateLimited.Inc()
	f.stats.Enforced.Inc()
	r := httpfilter.LocalReply{Status: f.status, Body: "local_rate_limited", Details: "local_rate_limited",
		Flags: httpfilter.FlagRateLimited}
	if f.headers {
		r.Headers = l.headerFields()
	}
	l.decided = false // the local reply carries them already
	l.cb.SendLocalReply(r)
	return httpfilter.HeadersStopIteration
}

func (l *filter) headerFields() []httpfilter.Field {
	secs := (l.reset + time.Second - 1) / time.Second
	return []httpfilter.Field{
		{Name: []byte("x-ratelimit-limit"), Value: strconv.AppendUint(nil, uint64(l.limit), 10)},
		{Name: []byte("x-ratelimit-remaining"), Value: strconv.AppendUint(nil, uint64(l.remaining), 10)},
		{Name: []byte("x-ratelimit-reset"), Value: strconv.AppendInt(nil, int64(secs), 10)},
	}
}

// DecodeData implements httpfilter.DecoderFilter.
func (l *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (l *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter.
func (l *filter) OnDestroy() {}

// httpfilter.EncoderFilter

// EncodeHeaders implements httpfilter.EncoderFilter: it adds the
// x-ratelimit-* headers to an upstream response when enabled.
func (l *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, _ bool) httpfilter.HeadersStatus {
	if l.f.headers && l.decided {
		for _, fl := range l.headerFields() {
			h.AddBytes(fl.Name, fl.Value)
		}
	}
	return httpfilter.HeadersContinue
}

// EncodeData implements httpfilter.EncoderFilter.
func (l *filter) EncodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// EncodeTrailers implements httpfilter.EncoderFilter.
func (l *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
	_ httpfilter.EncoderFilter = (*filter)(nil)
)
