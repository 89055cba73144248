package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// otlpSpan is a span as an OTLP/HTTP JSON collector decodes it.
type otlpSpan struct {
	TraceID, SpanID, ParentSpanID, Name string
	Kind                                int
	StartTimeUnixNano, EndTimeUnixNano  string
	Attributes                          []struct {
		Key   string
		Value struct{ StringValue string }
	}
	Status  struct{ Code int }
	Service string `json:"-"`
}

// attr returns the span's attribute key ("" when absent).
func (s *otlpSpan) attr(key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.StringValue
		}
	}
	return ""
}

// collector is an OTLP/HTTP JSON trace collector.
type collector struct {
	url     string
	mu      sync.Mutex
	spans   []otlpSpan
	changed chan struct{} // closed and replaced when spans grows
}

func newCollector(t *testing.T) *collector {
	c := &collector{changed: make(chan struct{})}
	srv := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []struct {
						Key   string
						Value struct{ StringValue string }
					}
				}
				ScopeSpans []struct{ Spans []otlpSpan }
			}
		}
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not OTLP JSON", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					svc = a.Value.StringValue
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					s.Service = svc
					c.spans = append(c.spans, s)
				}
			}
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		w.Write([]byte("{}"))
	}))
	c.url = "http://" + srv.Addr + "/v1/traces"
	return c
}

// wait returns the spans once match holds for them, failing the test after
// ioTimeout.
func (c *collector) wait(t *testing.T, what string, match func([]otlpSpan) bool) []otlpSpan {
	t.Helper()
	deadline := time.NewTimer(ioTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		spans, ch := append([]otlpSpan(nil), c.spans...), c.changed
		c.mu.Unlock()
		if match(spans) {
			return spans
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("collector: no %s in %d spans: %+v", what, len(spans), spans)
		}
	}
}

// spanOf waits for the span of trace whose http.url ends with path.
func (c *collector) spanOf(t *testing.T, trace, path string) otlpSpan {
	t.Helper()
	var found otlpSpan
	c.wait(t, "span for "+path, func(spans []otlpSpan) bool {
		for _, s := range spans {
			if s.TraceID == trace && strings.HasSuffix(s.attr("http.url"), path) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// traceparents is an upstream that records the traceparents each request
// path arrives with, and answers 200 (503 the first time for a path under
// /retry).
type traceparents struct {
	mu   sync.Mutex
	seen map[string][]string
	addr string
}

func newTraceparentUpstream(t *testing.T) *traceparents {
	u := &traceparents{seen: map[string][]string{}}
	u.addr = testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		first := len(u.seen[r.URL.Path]) == 0
		u.seen[r.URL.Path] = append(u.seen[r.URL.Path], r.Header.Values("traceparent")...)
		u.mu.Unlock()
		if first && strings.HasPrefix(r.URL.Path, "/retry") {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})).Addr
	return u
}

// of returns the one traceparent path arrived with, split in its four
// parts.
func (u *traceparents) of(t *testing.T, path string) []string {
	t.Helper()
	all := u.all(t, path)
	if len(all) != 1 {
		t.Fatalf("upstream got %d traceparents for %s, want one", len(all), path)
	}
	return all[0]
}

// all returns the traceparents path arrived with, in order, each split in
// its four parts.
func (u *traceparents) all(t *testing.T, path string) [][]string {
	t.Helper()
	u.mu.Lock()
	v := u.seen[path]
	u.mu.Unlock()
	var out [][]string
	for _, tp := range v {
		p := strings.Split(tp, "-")
		if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
			t.Fatalf("upstream traceparent %q for %s is malformed", tp, path)
		}
		out = append(out, p)
	}
	return out
}

// tracingChain is a manager table tracing to collectorURL with the extra
// tracing lines, for a filter chain (tls with cert and key when certFile
// is set).
func tracingChain(prefix, certFile, keyFile, collectorURL string, tracingExtra ...string) string {
	tlsBlock := ""
	if certFile != "" {
		tlsBlock = fmt.Sprintf(`
  name = "tls"
    [[listener.filter_chain.tls.certificate]]
    cert_file = %q
    key_file = %q`, certFile, keyFile)
	}
	return fmt.Sprintf(`
  [[listener.filter_chain]]%s
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = %q
    route_config = "local"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
      [listener.filter_chain.filter.config.tracing]
      custom_tags = [{ tag = "env", literal = "prod" }, { tag = "tenant", request_header = "x-tenant", default_value = "none" }]
      %s
      [listener.filter_chain.filter.config.tracing.provider]
      name = "opentelemetry"
      collector_endpoint = %q
      service_name = "edge"
      flush_interval = "50ms"
      min_flush_spans = 1
`, tlsBlock, prefix, strings.Join(tracingExtra, "\n      "), collectorURL)
}

// tracingConfig is a plain listener "http" and an HTTP/3 listener "h3"
// (with cert and key), both tracing to collectorURL, routing /dead to a
// closed port and everything else to upstream, with an admin API.
func tracingConfig(workers int, certFile, keyFile, upstream, collectorURL string, tracingExtra ...string) string {
	return fmt.Sprintf(`
[server]
workers = %d
[admin]
address = "127.0.0.1:0"
[[listener]]
name = "http"
address = "127.0.0.1:0"
%s
[[listener]]
name = "h3"
address = "127.0.0.1:0"
protocol = "udp"
%s
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/dead" }
    cluster = "dead"
    [[route_config.virtual_host.route]]
    match = { prefix = "/retry" }
    cluster = "up"
    retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_back_off = { base_interval = "1ms" } }
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
%s%s`, workers, tracingChain("ingress_http", "", "", collectorURL, tracingExtra...),
		tracingChain("ingress_h3", certFile, keyFile, collectorURL, tracingExtra...), cluster("up", upstream), cluster("dead", "127.0.0.1:1"))
}

// startTracing starts sluice with tracingConfig and returns it with the
// upstream, the collector, the CA of the HTTP/3 certificate and the admin
// address.
func startTracing(t *testing.T, workers int, collectorURL string, tracingExtra ...string) (*gwtest.Proxy, *traceparents, *collector, *testutil.CA, string) {
	t.Helper()
	col := newCollector(t)
	if collectorURL == "" {
		collectorURL = col.url
	}
	up := newTraceparentUpstream(t)
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	p := gwtest.Start(t, tracingConfig(workers, cert, key, up.addr, collectorURL, tracingExtra...))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	return p, up, col, ca, admin
}

// TestTracingSpanForEachDownstreamProtocol checks, over HTTP/1.1, HTTP/2
// (h2c) and HTTP/3, that a request without a trace context starts a
// sampled trace: the upstream gets a traceparent naming sluice's span, and
// the collector gets that SERVER span with Envoy's tags and the custom
// ones.
func TestTracingSpanForEachDownstreamProtocol(t *testing.T) {
	p, up, col, ca, admin := startTracing(t, 2, "")
	base := "http://" + p.Addr("http")
	clients := []struct {
		proto string
		c     *http.Client
		url   string
	}{
		{"HTTP/1.1", newClient(nil), base},
		{"HTTP/2", h2cClient(nil), base},
		{"HTTP/3", h3TimeoutClient(t, ca), "https://" + p.Addr("h3")},
	}
	for _, cl := range clients {
		path := "/proto/" + strings.ReplaceAll(cl.proto, "/", "")
		start := time.Now()
		resp, _ := get(t, cl.c, cl.url+path, "x-tenant", "acme", "x-request-id", "rid"+path, "user-agent", "tracing-test")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", cl.proto, resp.StatusCode)
		}
		tp := up.of(t, path)
		if tp[3] != "01" {
			t.Fatalf("%s: upstream traceparent %v is not sampled", cl.proto, tp)
		}
		s := col.spanOf(t, tp[1], path)
		if s.SpanID != tp[2] || s.ParentSpanID != "" || s.Kind != 2 || s.Name != "ingress" || s.Service != "edge" {
			t.Fatalf("%s: span %+v; want id %s, no parent, kind SERVER, name ingress, service edge", cl.proto, s, tp[2])
		}
		var st, en int64
		fmt.Sscan(s.StartTimeUnixNano, &st)
		fmt.Sscan(s.EndTimeUnixNano, &en)
		if st < start.Add(-2*time.Second).UnixNano() || en < st || en > time.Now().Add(2*time.Second).UnixNano() {
			t.Errorf("%s: span times %s..%s, request at %d", cl.proto, s.StartTimeUnixNano, s.EndTimeUnixNano, start.UnixNano())
		}
		for k, v := range map[string]string{
			"http.protocol": cl.proto, "http.method": "GET", "http.status_code": "200", "upstream_cluster": "up",
			"upstream_address": up.addr, "component": "proxy", "response_flags": "-", "guid:x-request-id": "rid" + path,
			"user_agent": "tracing-test", "env": "prod", "tenant": "acme", "response_size": "2",
		} {
			if got := s.attr(k); got != v {
				t.Errorf("%s: attribute %s = %q, want %q", cl.proto, k, got, v)
			}
		}
		if u := s.attr("http.url"); !strings.HasSuffix(u, path) || !strings.Contains(u, "://") {
			t.Errorf("%s: http.url %q", cl.proto, u)
		}
		if s.attr("error") != "" || s.Status.Code != 0 {
			t.Errorf("%s: a 200 has error %q, status %d", cl.proto, s.attr("error"), s.Status.Code)
		}
	}
	waitCounter(t, admin, "tracing.opentelemetry.spans_sent", 3)
	waitCounter(t, admin, "http.ingress_http.tracing.random_sampling", 2)
	waitCounter(t, admin, "http.ingress_h3.tracing.random_sampling", 1)
}

// TestTracingContinuesAnIncomingTrace checks that a sampled incoming
// traceparent is continued (same trace, the client's span as the parent),
// and that an unsampled one is propagated with flag 00 and not exported,
// as Envoy's OpenTelemetry tracer does.
func TestTracingContinuesAnIncomingTrace(t *testing.T) {
	p, up, col, _, _ := startTracing(t, 1, "")
	c := newClient(nil)
	base := "http://" + p.Addr("http")
	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	const unsampledTrace = "0af7651916cd43dd8448eb211c80319c"
	get(t, c, base+"/unsampled", "traceparent", "00-"+unsampledTrace+"-b7ad6b7169203331-00", "tracestate", "a=b")
	tp := up.of(t, "/unsampled")
	if tp[1] != unsampledTrace || tp[2] == "b7ad6b7169203331" || tp[3] != "00" {
		t.Fatalf("unsampled parent: upstream traceparent %v, want trace %s, a new span id, flag 00", tp, unsampledTrace)
	}
	get(t, c, base+"/sampled", "traceparent", "00-"+trace+"-"+parent+"-01")
	tp = up.of(t, "/sampled")
	if tp[1] != trace || tp[2] == parent || tp[3] != "01" {
		t.Fatalf("sampled parent: upstream traceparent %v, want trace %s, a new span id, flag 01", tp, trace)
	}
	s := col.spanOf(t, trace, "/sampled")
	if s.ParentSpanID != parent || s.SpanID != tp[2] {
		t.Fatalf("span %+v; want parent %s, id %s", s, parent, tp[2])
	}
	// One worker exports in order: the unsampled request, served first,
	// would have been in the same batch or an earlier one.
	for _, s := range col.wait(t, "spans", func([]otlpSpan) bool { return true }) {
		if s.TraceID == unsampledTrace {
			t.Fatalf("the unsampled trace was exported: %+v", s)
		}
	}
}

// TestTracingRandomSamplingZero checks that with random_sampling = 0 a
// request without a trace context is not exported but its upstream still
// gets a traceparent, flag 00 (Envoy's OpenTelemetry tracer propagates
// the decision), and that x-envoy-force-trace from an internal client
// traces anyway.
func TestTracingRandomSamplingZero(t *testing.T) {
	p, up, col, _, admin := startTracing(t, 1, "", "random_sampling = 0")
	c := newClient(nil)
	base := "http://" + p.Addr("http")
	get(t, c, base+"/quiet")
	quiet := up.of(t, "/quiet")
	if quiet[3] != "00" {
		t.Fatalf("upstream traceparent %v, want flag 00", quiet)
	}
	get(t, c, base+"/forced", "x-envoy-force-trace", "true")
	forced := up.of(t, "/forced")
	if forced[3] != "01" {
		t.Fatalf("forced: upstream traceparent %v, want flag 01", forced)
	}
	col.spanOf(t, forced[1], "/forced")
	for _, s := range col.wait(t, "spans", func([]otlpSpan) bool { return true }) {
		if s.TraceID == quiet[1] {
			t.Fatalf("the unsampled request was exported: %+v", s)
		}
	}
	waitCounter(t, admin, "tracing.opentelemetry.spans_sent", 1)
	waitCounter(t, admin, "http.ingress_http.tracing.not_traceable", 1)
	waitCounter(t, admin, "http.ingress_http.tracing.service_forced", 1)
}

// TestTracingFailedRequestIsAnError checks that a request sluice answers
// 503 (upstream connection failure) gets error=true, the ERROR status,
// its response flags and status code.
func TestTracingFailedRequestIsAnError(t *testing.T) {
	p, _, col, _, _ := startTracing(t, 1, "")
	const trace = "5bf92f3577b34da6a3ce929d0e0e4737"
	resp, _ := get(t, newClient(nil), "http://"+p.Addr("http")+"/dead", "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 503 {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	s := col.spanOf(t, trace, "/dead")
	if s.attr("error") != "true" || s.Status.Code != 2 || s.attr("http.status_code") != "503" ||
		s.attr("response_flags") != "UF" || s.attr("upstream_cluster") != "dead" {
		t.Fatalf("span %+v; want error=true, status ERROR, 503, UF, cluster dead", s)
	}
}

// TestTracingSpawnsAnUpstreamSpanPerTry checks spawn_upstream_span: a
// CLIENT span per upstream try, child of the SERVER span, whose id is the
// parent that try's upstream request names; a retried try (503) is an
// error, the last has the response's status.
func TestTracingSpawnsAnUpstreamSpanPerTry(t *testing.T) {
	p, up, col, _, _ := startTracing(t, 1, "", "spawn_upstream_span = true")
	c := newClient(nil)
	get(t, c, "http://"+p.Addr("http")+"/spawn")
	tp := up.of(t, "/spawn")
	srv := col.spanOf(t, tp[1], "/spawn")
	if srv.SpanID == tp[2] {
		t.Fatalf("the upstream's parent is the SERVER span, want the CLIENT span")
	}
	byID := func(id string) otlpSpan {
		var found otlpSpan
		col.wait(t, "span "+id, func(spans []otlpSpan) bool {
			for _, s := range spans {
				if s.SpanID == id {
					found = s
					return true
				}
			}
			return false
		})
		return found
	}
	if s := byID(tp[2]); s.Kind != 3 || s.ParentSpanID != srv.SpanID || s.TraceID != tp[1] || s.Name != "router up egress" ||
		s.attr("http.status_code") != "200" || s.attr("upstream_address") != up.addr || s.attr("error") != "" {
		t.Fatalf("upstream span %+v; want kind CLIENT, parent %s, name \"router up egress\", 200", s, srv.SpanID)
	}

	if resp, _ := get(t, c, "http://"+p.Addr("http")+"/retry"); resp.StatusCode != 200 {
		t.Fatalf("/retry: status %d, want 200 after a retry", resp.StatusCode)
	}
	tries := up.all(t, "/retry")
	if len(tries) != 2 || tries[0][1] != tries[1][1] || tries[0][2] == tries[1][2] {
		t.Fatalf("upstream traceparents %v; want two tries of one trace with different parents", tries)
	}
	srv = col.spanOf(t, tries[0][1], "/retry")
	first, second := byID(tries[0][2]), byID(tries[1][2])
	for i, s := range []otlpSpan{first, second} {
		if s.Kind != 3 || s.ParentSpanID != srv.SpanID || s.attr("retry.attempt") != fmt.Sprint(i) {
			t.Fatalf("try %d: span %+v, want a CLIENT child of %s", i, s, srv.SpanID)
		}
	}
	if first.attr("error") != "true" || second.attr("error") != "" || second.attr("http.status_code") != "200" ||
		first.EndTimeUnixNano > second.StartTimeUnixNano {
		t.Fatalf("tries %+v, %+v; want the first an error ending as the second starts, the second 200", first, second)
	}
}

// TestTracingCollectorDownDoesNotAffectRequests checks that requests are
// served while the collector refuses connections, and that the failed
// exports are counted.
func TestTracingCollectorDownDoesNotAffectRequests(t *testing.T) {
	p, up, _, _, admin := startTracing(t, 1, "http://"+testutil.DeadAddr(t)+"/v1/traces")
	c := newClient(nil)
	for i := range 20 {
		path := fmt.Sprintf("/down/%d", i)
		resp, _ := get(t, c, "http://"+p.Addr("http")+path)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		up.of(t, path)
	}
	deadline := time.Now().Add(ioTimeout)
	for adminCounters(t, admin)["tracing.opentelemetry.http_reports_failed"] < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("http_reports_failed never counted: %v", adminCounters(t, admin))
		}
		time.Sleep(20 * time.Millisecond) // polling the admin API, which has no wait
	}
	if n := adminCounters(t, admin)["tracing.opentelemetry.spans_sent"]; n != 0 {
		t.Fatalf("spans_sent = %v with the collector down", n)
	}
}

// TestTracingDrainedWorkerSendsItsQueuedSpans checks that the spans a
// worker still holds when it drains (its flush interval far away, its
// batch not full) reach the collector before the process exits.
func TestTracingDrainedWorkerSendsItsQueuedSpans(t *testing.T) {
	col := newCollector(t)
	up := newTraceparentUpstream(t)
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	cfg := tracingConfig(1, cert, key, up.addr, col.url)
	cfg = strings.ReplaceAll(cfg, `flush_interval = "50ms"`, `flush_interval = "1h"`)
	cfg = strings.ReplaceAll(cfg, `min_flush_spans = 1`+"\n", `min_flush_spans = 1000`+"\n")
	if !strings.Contains(cfg, `flush_interval = "1h"`) || !strings.Contains(cfg, "min_flush_spans = 1000") {
		t.Fatal("the test's config edit did not apply")
	}
	p := gwtest.Start(t, cfg)
	resp, _ := get(t, newClient(nil), "http://"+p.Addr("http")+"/queued")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tp := up.of(t, "/queued")
	col.mu.Lock()
	early := len(col.spans)
	col.mu.Unlock()
	if early != 0 {
		t.Fatalf("the collector got %d spans before the drain: the test cannot tell a flush on exit", early)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(ioTimeout):
		t.Fatal("sluice did not exit after SIGTERM")
	}
	col.mu.Lock()
	spans := append([]otlpSpan(nil), col.spans...)
	col.mu.Unlock()
	if len(spans) != 1 || spans[0].TraceID != tp[1] || spans[0].SpanID != tp[2] {
		t.Fatalf("after the drain the collector has %+v, want the one span of trace %s", spans, tp[1])
	}
}

// TestTracingRouteDecorator checks Envoy's route decorator: it names the
// span and, on an ingress manager, goes back to the client in
// x-envoy-decorator-operation (not with propagate = false); an internal
// client's x-envoy-decorator-operation names the span instead and is not
// passed upstream. On an egress manager the decorator goes upstream in
// the request, and the upstream's answer in that header names the span.
func TestTracingRouteDecorator(t *testing.T) {
	for _, egress := range []bool{false, true} {
		col := newCollector(t)
		var mu sync.Mutex
		seen := map[string]string{} // path -> x-envoy-decorator-operation the upstream got
		up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[r.URL.Path] = r.Header.Get("x-envoy-decorator-operation")
			mu.Unlock()
			if r.URL.Path == "/decorated/renamed" {
				w.Header().Set("x-envoy-decorator-operation", "renamed-by-upstream")
			}
			w.Write([]byte("ok"))
		}))
		ca := testutil.NewCA(t)
		cert, key, _ := ca.Leaf(t, "h3.test")
		var extra []string
		if egress {
			extra = append(extra, `operation_name = "egress"`)
		}
		cfg := tracingConfig(1, cert, key, up.Addr, col.url, extra...)
		routes := `
    [[route_config.virtual_host.route]]
    match = { prefix = "/decorated" }
    cluster = "up"
    decorator = { operation = "checkout" }
    [[route_config.virtual_host.route]]
    match = { prefix = "/quiet" }
    cluster = "up"
    decorator = { operation = "quiet-op", propagate = false }
    [[route_config.virtual_host.route]]
    match = { prefix = "/dead" }`
		if !strings.Contains(cfg, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/dead\" }") {
			t.Fatal("the test's config edit does not apply")
		}
		cfg = strings.Replace(cfg, "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/dead\" }", routes, 1)
		p := gwtest.Start(t, cfg)
		c := newClient(nil)
		type want struct {
			path, reqHeader, span, respHeader, upstreamGot string
		}
		var cases []want
		if !egress {
			cases = []want{
				{"/decorated/a", "", "checkout", "checkout", ""},
				{"/quiet/a", "", "quiet-op", "", ""},
				{"/decorated/b", "from-client", "from-client", "", ""},
				{"/other", "", "ingress", "", ""},
			}
		} else {
			cases = []want{
				{"/decorated/a", "", "checkout", "", "checkout"},
				{"/quiet/a", "", "quiet-op", "", ""},
				{"/decorated/renamed", "", "renamed-by-upstream", "", "checkout"},
			}
		}
		for _, w := range cases {
			var hdr []string
			if w.reqHeader != "" {
				hdr = []string{"x-envoy-decorator-operation", w.reqHeader}
			}
			resp, _ := get(t, c, "http://"+p.Addr("http")+w.path, hdr...)
			if resp.StatusCode != 200 {
				t.Fatalf("egress %v %s: status %d", egress, w.path, resp.StatusCode)
			}
			if got := resp.Header.Get("x-envoy-decorator-operation"); got != w.respHeader {
				t.Errorf("egress %v %s: response x-envoy-decorator-operation %q, want %q", egress, w.path, got, w.respHeader)
			}
			mu.Lock()
			got := seen[w.path]
			mu.Unlock()
			if got != w.upstreamGot {
				t.Errorf("egress %v %s: upstream got x-envoy-decorator-operation %q, want %q", egress, w.path, got, w.upstreamGot)
			}
			col.wait(t, "span named "+w.span+" for "+w.path, func(spans []otlpSpan) bool {
				for _, s := range spans {
					if strings.HasSuffix(s.attr("http.url"), w.path) {
						return s.Name == w.span
					}
				}
				return false
			})
		}
	}
}
