package tracing

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// testTracer is a tracer with cfg's defaults whose exporter never sends:
// its goroutine counts as started and its queue holds up to maxQueue spans.
func testTracer(t testing.TB, cfg Config, maxQueue int) *Tracer {
	t.Helper()
	cfg.Provider.Name = "opentelemetry"
	cfg.Provider.CollectorEndpoint = "http://127.0.0.1:9/v1/traces"
	cfg.WithDefaults()
	if err := cfg.Validate("tracing."); err != nil {
		t.Fatal(err)
	}
	return &Tracer{cfg: &cfg, node: "node-1", exp: &exporter{service: "svc", started: true, minFlush: 1 << 30,
		maxQueue: maxQueue, kick: make(chan struct{}, 1)}, egress: cfg.OperationName == "egress"}
}

func request(fields ...string) *httpfilter.RequestHeaders {
	h := &httpfilter.RequestHeaders{Method: []byte("GET"), Scheme: []byte("http"), Authority: []byte("example.test"), Path: []byte("/a/b?c=d")}
	for i := 0; i+1 < len(fields); i += 2 {
		h.Add(fields[i], fields[i+1])
	}
	return h
}

func pctp(v float64) *float64 { return &v }

const parentTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestStartDecidesAndPropagates(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		internal bool
		fields   []string
		sampled  bool
		cont     bool
	}{
		{"new trace, default 100%", Config{}, false, nil, true, false},
		{"random_sampling 0", Config{RandomSampling: pctp(0)}, false, nil, false, false},
		{"sampled parent", Config{RandomSampling: pctp(0)}, false, []string{"traceparent", parentTP}, true, true},
		{"unsampled parent", Config{}, false, []string{"traceparent", parentTP[:53] + "00"}, false, true},
		{"malformed parent starts a trace", Config{}, false, []string{"traceparent", "00-zz"}, true, false},
		{"forced by an internal client", Config{RandomSampling: pctp(0)}, true, []string{"x-envoy-force-trace", "1"}, true, false},
		{"force ignored from an external client", Config{RandomSampling: pctp(0)}, false, []string{"x-envoy-force-trace", "1"}, false, false},
		{"client trace id", Config{RandomSampling: pctp(0)}, false, []string{"x-client-trace-id", "abc"}, true, false},
		{"client trace id, client_sampling 0", Config{RandomSampling: pctp(0), ClientSampling: pctp(0)}, false, []string{"x-client-trace-id", "abc"}, false, false},
		{"overall_sampling 0", Config{OverallSampling: pctp(0)}, true, []string{"x-envoy-force-trace", "1"}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := testTracer(t, c.cfg, 16)
			h := request(c.fields...)
			var sp Span
			tr.Start(&sp, h, c.internal, time.Now())
			if sp.Sampled != c.sampled {
				t.Fatalf("sampled %v, want %v", sp.Sampled, c.sampled)
			}
			out, ok := ParseTraceparent(h.Get("traceparent"))
			if !ok || out.Sampled != c.sampled || out.TraceID != sp.ctx.TraceID || out.SpanID != sp.ctx.SpanID {
				t.Fatalf("upstream traceparent %q, span %+v", h.Get("traceparent"), sp.ctx)
			}
			parent, _ := ParseTraceparent([]byte(parentTP))
			if got := sp.ctx.TraceID == parent.TraceID && sp.parent == parent.SpanID; got != c.cont {
				t.Fatalf("continued the parent: %v, want %v (span %+v, parent %x)", got, c.cont, sp.ctx, sp.parent)
			}
			n := 0
			for _, f := range h.Fields {
				if string(f.Name) == "traceparent" {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("request has %d traceparent fields: %q", n, h.Fields)
			}
		})
	}
}

// TestFinishExportsOTLPJSON finishes a sampled 5xx request with custom tags
// and spawn_upstream_span, and decodes the export request as a collector
// does.
func TestFinishExportsOTLPJSON(t *testing.T) {
	tr := testTracer(t, Config{SpawnUpstreamSpan: true, MaxPathTagLength: 20, CustomTags: []CustomTag{
		{Tag: "env", Literal: "prod"}, {Tag: "tenant", RequestHeader: "X-Tenant"},
		{Tag: "missing", RequestHeader: "x-none", DefaultValue: "dflt"}, {Tag: "absent", RequestHeader: "x-none"},
	}}, 16)
	h := request("traceparent", parentTP, "tracestate", `k=v,"q"`, "x-tenant", "acme", "x-request-id", "rid-1", "user-agent", "ua")
	var sp Span
	start := time.Unix(1700000000, 5)
	tr.Start(&sp, h, false, start)
	tr.UpstreamTry(&sp, h, "127.0.0.1:1", start.Add(time.Microsecond))
	info := &httpfilter.StreamInfo{Protocol: "HTTP/2", UpstreamCluster: "up", UpstreamHost: "127.0.0.1:1", ResponseCode: 503,
		ResponseFlags: httpfilter.FlagUpstreamConnectionFailure, BytesReceived: 3, BytesSent: 7}
	tr.Finish(&sp, info, h, start.Add(time.Millisecond))
	if len(tr.exp.queue) != 2 {
		t.Fatalf("%d spans queued, want the server and the upstream span", len(tr.exp.queue))
	}
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []kv `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []struct {
					TraceID, SpanID, ParentSpanID, TraceState, Name string
					Kind                                            int
					StartTimeUnixNano, EndTimeUnixNano              string
					Attributes                                      []kv
					Status                                          struct{ Code int }
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	body := appendExportRequest(nil, "svc", tr.exp.queue)
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	rs := req.ResourceSpans[0]
	if a := attrs(rs.Resource.Attributes); a["service.name"] != "svc" {
		t.Fatalf("resource %v", a)
	}
	spans := rs.ScopeSpans[0].Spans
	srv, up := spans[0], spans[1]
	tp := h.Get("traceparent")
	if srv.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || srv.ParentSpanID != "00f067aa0ba902b7" || srv.Kind != kindServer ||
		srv.Name != "ingress" || srv.TraceState != `k=v,"q"` || srv.StartTimeUnixNano != "1700000000000000005" ||
		srv.EndTimeUnixNano != "1700000000001000005" || srv.Status.Code != statusError {
		t.Fatalf("server span %+v", srv)
	}
	if up.TraceID != srv.TraceID || up.ParentSpanID != srv.SpanID || up.Kind != kindClient || up.Name != "router up egress" ||
		string(tp[36:52]) != up.SpanID || up.StartTimeUnixNano != "1700000000000001005" || up.EndTimeUnixNano != srv.EndTimeUnixNano ||
		up.Status.Code != statusError {
		t.Fatalf("upstream span %+v, server span id %s, traceparent %s", up, srv.SpanID, tp)
	}
	want := map[string]string{
		"http.method": "GET", "http.url": "http://example.test/", "http.protocol": "HTTP/2", "http.status_code": "503",
		"upstream_cluster": "up", "upstream_address": "127.0.0.1:1", "component": "proxy", "node_id": "node-1",
		"response_flags": "UF", "request_size": "3", "response_size": "7", "guid:x-request-id": "rid-1",
		"user_agent": "ua", "downstream_cluster": "-", "error": "true", "env": "prod", "tenant": "acme", "missing": "dflt",
	}
	got := attrs(srv.Attributes)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["absent"]; ok {
		t.Errorf("a request_header tag without value or default was set")
	}
}

type kv struct {
	Key   string
	Value struct{ StringValue string }
}

func attrs(l []kv) map[string]string {
	m := map[string]string{}
	for _, a := range l {
		m[a.Key] = a.Value.StringValue
	}
	return m
}

func TestAppendJSONStringEscapes(t *testing.T) {
	in := "a\"b\\c\n\x01\xffé"
	var out string
	if err := json.Unmarshal(appendJSONString(nil, in), &out); err != nil || out != "a\"b\\c\n\x01\ufffdé" {
		t.Fatalf("%q -> %q, %v", in, out, err)
	}
}

func TestFinishDropsWhenTheQueueIsFull(t *testing.T) {
	tr := testTracer(t, Config{}, 1)
	tr.exp.stats.Store(newCounters(nil))
	for range 3 {
		var sp Span
		tr.Start(&sp, request(), false, time.Now())
		tr.Finish(&sp, &httpfilter.StreamInfo{ResponseCode: 200}, request(), time.Now())
	}
	if n, d := len(tr.exp.queue), tr.exp.stats.Load().dropped.Value(); n != 1 || d != 2 {
		t.Fatalf("queued %d, dropped %d; want 1 and 2", n, d)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	ok := func() Config {
		return Config{Provider: Provider{Name: "opentelemetry", CollectorEndpoint: "http://127.0.0.1:4318/v1/traces"}}
	}
	cases := []struct {
		key string
		set func(*Config)
	}{
		{"tracing.random_sampling", func(c *Config) { c.RandomSampling = pctp(101) }},
		{"tracing.client_sampling", func(c *Config) { c.ClientSampling = pctp(-1) }},
		{"tracing.overall_sampling", func(c *Config) { c.OverallSampling = pctp(200) }},
		{"tracing.max_path_tag_length", func(c *Config) { c.MaxPathTagLength = -1 }},
		{"tracing.operation_name", func(c *Config) { c.OperationName = "sideways" }},
		{"tracing.provider.name", func(c *Config) { c.Provider.Name = "zipkin" }},
		{"tracing.provider.collector_endpoint", func(c *Config) { c.Provider.CollectorEndpoint = "127.0.0.1:4318" }},
		{"tracing.custom_tags[0].tag", func(c *Config) { c.CustomTags = []CustomTag{{Literal: "x"}} }},
		{"tracing.custom_tags[0]", func(c *Config) { c.CustomTags = []CustomTag{{Tag: "t"}} }},
		{"tracing.custom_tags[0].default_value", func(c *Config) { c.CustomTags = []CustomTag{{Tag: "t", Literal: "x", DefaultValue: "y"}} }},
	}
	for _, tc := range cases {
		c := ok()
		tc.set(&c)
		c.WithDefaults()
		err := c.Validate("tracing.")
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key {
			t.Errorf("Validate() = %v, want an error for %s", err, tc.key)
		}
	}
	c := ok()
	c.WithDefaults()
	if err := c.Validate("tracing."); err != nil {
		t.Fatal(err)
	}
	if *c.RandomSampling != 100 || *c.ClientSampling != 100 || *c.OverallSampling != 100 || c.MaxPathTagLength != 256 ||
		c.OperationName != "ingress" || c.Provider.FlushInterval.Duration != 5*time.Second || !strings.HasPrefix(c.Provider.ServiceName, "unknown_service") {
		t.Fatalf("defaults %+v", c)
	}
}

// BenchmarkStartFinish is the per-request cost of tracing: a sampled
// request (Start, Finish building the span's tags, queueing it) and one
// that is not (Start still sets the upstream traceparent).
func BenchmarkStartFinish(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{{"sampled", Config{}}, {"unsampled", Config{RandomSampling: pctp(0)}}} {
		b.Run(bc.name, func(b *testing.B) {
			tr := testTracer(b, bc.cfg, 1<<30)
			h := request("x-request-id", "8a4b1c6e-2f0d-4b9a-9c3e-5d7f1a2b3c4d", "user-agent", "bench")
			info := &httpfilter.StreamInfo{Protocol: "HTTP/1.1", UpstreamCluster: "up", UpstreamHost: "127.0.0.1:8080", ResponseCode: 200}
			now := time.Now()
			var sp Span
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				tr.Start(&sp, h, false, now)
				tr.Finish(&sp, info, h, now)
				if i&1023 == 1023 {
					tr.exp.queue = tr.exp.queue[:0]
				}
			}
		})
	}
}

// BenchmarkExportRequest is the exporter's cost of encoding a batch of 64
// spans as OTLP JSON.
func BenchmarkExportRequest(b *testing.B) {
	tr := testTracer(b, Config{}, 1<<30)
	h := request("x-request-id", "8a4b1c6e-2f0d-4b9a-9c3e-5d7f1a2b3c4d", "user-agent", "bench")
	info := &httpfilter.StreamInfo{Protocol: "HTTP/1.1", UpstreamCluster: "up", UpstreamHost: "127.0.0.1:8080", ResponseCode: 200}
	for range 64 {
		var sp Span
		tr.Start(&sp, h, false, time.Now())
		tr.Finish(&sp, info, h, time.Now())
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendExportRequest(buf[:0], "svc", tr.exp.queue)
	}
	b.SetBytes(int64(len(buf)))
}
