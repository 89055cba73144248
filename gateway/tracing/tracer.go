// Package tracing is the HTTP connection manager's request tracing: Envoy's
// tracing with its OpenTelemetry tracer. A Tracer, built once per manager
// and config generation, decides whether a request is traced, continues
// or starts a W3C trace context (traceparent, tracestate), sets the
// traceparent the upstream gets, and on the stream's end turns the span
// into OTLP and hands it to the worker's exporter, which sends batches to
// the collector over OTLP/HTTP JSON on its own goroutine.
//
// A stream keeps its Span inline; Start and Finish run on the stream's
// goroutine. A manager without a tracing table has a nil *Tracer and pays
// one nil check per request.
package tracing

import (
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Tracer is a manager's built tracing config: immutable, shared by every
// stream of the manager.
type Tracer struct {
	cfg    *Config
	exp    *exporter
	egress bool
	node   string
	// decisions count why requests without a parent were (not) traced:
	// Envoy's http.<stat_prefix>.tracing.* counters.
	decisions [nDecisions]*stats.Counter
}

// Decision reasons, in the order of decisionNames.
const (
	decRandom = iota
	decService
	decClient
	decNot
	nDecisions
)

// decisionNames are Envoy's http.<stat_prefix>.tracing.* counter names.
var decisionNames = [nDecisions]string{"random_sampling", "service_forced", "client_enabled", "not_traceable"}

// New builds the tracer of cfg (with its defaults set and validated) for
// the manager whose stat scope is scope ("http.<stat_prefix>."). The
// exporter it sends to belongs to the worker process and counts in slab.
func New(cfg *Config, scope string, slab *stats.Slab, log *zap.Logger) *Tracer {
	node, _ := os.Hostname()
	t := &Tracer{cfg: cfg, exp: exporterFor(&cfg.Provider, slab, log), egress: cfg.OperationName == "egress", node: node}
	for i, n := range decisionNames {
		t.decisions[i] = slab.Counter(scope + "tracing." + n)
	}
	return t
}

// DecisionStatDefs are the manager's tracing decision counters under scope
// ("http.<stat_prefix>.").
func DecisionStatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, len(decisionNames))
	for i, n := range decisionNames {
		defs[i] = stats.Def{Name: scope + "tracing." + n, Kind: stats.KindCounter}
	}
	return defs
}

// Span is one stream's tracing state, kept inline in the stream and reset
// by Start. The zero Span is not traced.
type Span struct {
	// Sampled reports whether the span is recorded and exported.
	Sampled bool
	active  bool
	ctx     SpanContext // the stream's span: trace id, own id
	parent  SpanID      // the incoming parent's id; zero for a root
	// tries are the upstream tries' CLIENT spans with
	// spawn_upstream_span, in order (kept across requests for their
	// storage).
	tries []try
	start time.Time
	// operation, when set, names the span (a route decorator, an
	// x-envoy-decorator-operation header).
	operation string
	// tp is the traceparent sent upstream (the field points into it).
	tp [traceparentLen]byte
}

// try is one upstream try's CLIENT span.
type try struct {
	id    SpanID
	start time.Time
	host  string
}

// Context returns the span's context: its trace id and own span id.
// SetOperation names the span operation (Envoy's span operation: a route
// decorator, an x-envoy-decorator-operation header) instead of "ingress"
// or "egress <authority>".
func (sp *Span) SetOperation(op string) { sp.operation = op }

func (sp *Span) Context() SpanContext { return sp.ctx }

// Parent returns the incoming parent span id (zero for a new trace).
func (sp *Span) Parent() SpanID { return sp.parent }

var (
	hdrTraceparent = []byte("traceparent")
)

// Start begins the stream's span at now: it continues the request's
// traceparent (a sampled parent is traced, an unsampled one is not) or
// starts a new trace (x-envoy-force-trace from an internal client,
// x-client-trace-id within client_sampling, else random_sampling; all
// within overall_sampling), and sets the traceparent the upstream gets,
// with this span (or its upstream CLIENT span) as the parent and the
// decision in the sampled flag, as Envoy's OpenTelemetry tracer does also
// for a request it does not trace. h must be the decorated request head.
func (t *Tracer) Start(sp *Span, h *httpfilter.RequestHeaders, internal bool, now time.Time) {
	clear(sp.tries)
	*sp = Span{active: true, start: now, tries: sp.tries[:0]}
	if parent, ok := ParseTraceparent(h.Get("traceparent")); ok {
		sp.ctx.TraceID = parent.TraceID
		sp.parent = parent.SpanID
		sp.Sampled = parent.Sampled
	} else {
		c := t.cfg
		dec := decNot
		switch {
		case internal && h.Has("x-envoy-force-trace"):
			dec = decService
		case h.Has("x-client-trace-id") && within(*c.ClientSampling):
			dec = decClient
		case within(*c.RandomSampling):
			dec = decRandom
		}
		if dec != decNot && !within(*c.OverallSampling) {
			dec = decNot
		}
		sp.Sampled = dec != decNot
		if t.decisions[dec] != nil {
			t.decisions[dec].Inc()
		}
		sp.ctx.TraceID = newTraceID()
	}
	sp.ctx.SpanID = newSpanID()
	sp.ctx.Sampled = sp.Sampled
	h.SetBytes(hdrTraceparent, AppendTraceparent(sp.tp[:0], sp.ctx))
}

// Egress reports whether the manager traces outbound requests
// (operation_name = "egress").
func (t *Tracer) Egress() bool { return t.egress }

// SpawnsUpstreamSpans reports whether the tracer adds a CLIENT span per
// upstream try (spawn_upstream_span).
func (t *Tracer) SpawnsUpstreamSpans() bool { return t.cfg.SpawnUpstreamSpan }

// UpstreamTry starts, at now, the CLIENT span of an upstream try to host,
// a child of the stream's span that ends when the next try starts or the
// stream ends, and sets h's traceparent to name it (with the stream's
// sampled flag). It does nothing for a span Start did not begin.
func (t *Tracer) UpstreamTry(sp *Span, h *httpfilter.RequestHeaders, host string, now time.Time) {
	if !sp.active {
		return
	}
	id := newSpanID()
	sp.tries = append(sp.tries, try{id: id, start: now, host: host})
	out := sp.ctx
	out.SpanID = id
	h.SetBytes(hdrTraceparent, AppendTraceparent(sp.tp[:0], out))
}

// within reports whether a random draw falls within percent (0..100).
func within(percent float64) bool {
	switch {
	case percent >= 100:
		return true
	case percent <= 0:
		return false
	}
	return rand.Float64()*100 < percent
}

func newTraceID() TraceID {
	var id TraceID
	for id == (TraceID{}) {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
		}
	}
	return id
}

func newSpanID() SpanID {
	var id SpanID
	for id == (SpanID{}) {
		v := rand.Uint64()
		for i := range 8 {
			id[i] = byte(v >> (8 * i))
		}
	}
	return id
}

// Finish ends a sampled span at now and queues it (and its upstream CLIENT
// span) for export with Envoy's tags taken from info and the request head
// h (nil when the stream had none). An unsampled span costs nothing more.
func (t *Tracer) Finish(sp *Span, info *httpfilter.StreamInfo, h *httpfilter.RequestHeaders, now time.Time) {
	if !sp.active || !sp.Sampled {
		sp.active = false
		return
	}
	sp.active = false
	s := &spanData{
		traceID:  sp.ctx.TraceID,
		spanID:   sp.ctx.SpanID,
		parentID: sp.parent,
		kind:     kindServer,
		name:     "ingress",
		start:    sp.start.UnixNano(),
		end:      now.UnixNano(),
	}
	var authority []byte
	if h != nil {
		s.traceState = string(h.Get("tracestate"))
		authority = h.Authority
	}
	if t.egress {
		s.kind = kindClient
		s.name = "egress " + string(authority)
	}
	if sp.operation != "" {
		s.name = sp.operation
	}
	s.attrs, s.err = t.tags(info, h)
	t.exp.enqueue(s)
	for i, tr := range sp.tries {
		t.exp.enqueue(t.trySpan(sp, s, info, i, tr, now))
	}
	clear(sp.tries) // the host strings
	sp.tries = sp.tries[:0]
}

// trySpan is the CLIENT span of upstream try i of the stream whose span is
// srv: Envoy's "router <cluster> egress". A try that was retried ends when
// the next starts and is an error (the retry policy retried it); the last
// has the stream's outcome.
func (t *Tracer) trySpan(sp *Span, srv *spanData, info *httpfilter.StreamInfo, i int, tr try, now time.Time) *spanData {
	last := i == len(sp.tries)-1
	end, code, failed := now, strconv.Itoa(info.ResponseCode), srv.err
	if !last {
		end, code, failed = sp.tries[i+1].start, "-", true
	}
	u := &spanData{
		traceID: sp.ctx.TraceID, spanID: tr.id, parentID: sp.ctx.SpanID, traceState: srv.traceState,
		name: "router " + info.UpstreamCluster + " egress", kind: kindClient, start: tr.start.UnixNano(), end: end.UnixNano(),
		attrs: []attr{
			{"component", "proxy"},
			{"upstream_cluster", info.UpstreamCluster},
			{"upstream_address", tr.host},
			{"http.protocol", info.Protocol},
			{"http.status_code", code},
			{"retry.attempt", strconv.Itoa(i)},
		},
		err: failed,
	}
	if failed {
		u.attrs = append(u.attrs, attr{"error", "true"})
	}
	return u
}

// tags are Envoy's span tags of a finished stream, and whether it failed
// (a 5xx or no response at all).
func (t *Tracer) tags(info *httpfilter.StreamInfo, h *httpfilter.RequestHeaders) ([]attr, bool) {
	a := make([]attr, 0, 16+len(t.cfg.CustomTags))
	a = append(a, attr{"component", "proxy"}, attr{"node_id", t.node})
	if h != nil {
		a = append(a,
			attr{"guid:x-request-id", string(h.Get("x-request-id"))},
			attr{"http.url", t.url(h)},
			attr{"http.method", string(h.Method)},
			attr{"downstream_cluster", orDash(h.Get("x-envoy-downstream-service-cluster"))},
			attr{"user_agent", orDash(h.Get("user-agent"))})
	}
	a = append(a,
		attr{"http.protocol", info.Protocol},
		attr{"upstream_cluster", info.UpstreamCluster},
		attr{"upstream_cluster.name", info.UpstreamCluster},
		attr{"http.status_code", strconv.Itoa(info.ResponseCode)},
		attr{"response_flags", info.ResponseFlags.String()},
		attr{"request_size", strconv.FormatInt(info.BytesReceived, 10)},
		attr{"response_size", strconv.FormatInt(info.BytesSent, 10)})
	if info.UpstreamHost != "" {
		a = append(a, attr{"upstream_address", info.UpstreamHost})
	}
	for _, ct := range t.cfg.CustomTags {
		v := ct.Literal
		if ct.RequestHeader != "" {
			v = ct.DefaultValue
			if h != nil {
				if hv := h.Get(ct.RequestHeader); hv != nil {
					v = string(hv)
				}
			}
		}
		if v != "" {
			a = append(a, attr{ct.Tag, v})
		}
	}
	failed := info.ResponseCode == 0 || info.ResponseCode >= 500
	if failed {
		a = append(a, attr{"error", "true"})
	}
	return a, failed
}

// url is Envoy's http.url tag: scheme://authority/path (the path before
// a route rewrite), truncated to max_path_tag_length.
func (t *Tracer) url(h *httpfilter.RequestHeaders) string {
	path := h.Path
	if orig := h.Get("x-envoy-original-path"); orig != nil {
		path = orig // the router rewrote the path
	}
	b := make([]byte, 0, len(h.Scheme)+3+len(h.Authority)+len(path))
	b = append(append(append(append(b, h.Scheme...), "://"...), h.Authority...), path...)
	if len(b) > t.cfg.MaxPathTagLength {
		b = b[:t.cfg.MaxPathTagLength]
	}
	return string(b)
}

func orDash(v []byte) string {
	if len(v) == 0 {
		return "-"
	}
	return string(v)
}
