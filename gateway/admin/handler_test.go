package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

// fake is a hand-written Server that records what it was asked to do.
type fake struct {
	region *stats.Region

	mu       sync.Mutex
	ready    bool
	healthy  *bool
	drained  *bool
	levels   map[string]string
	resets   int
	reopened int
	quit     chan struct{}
}

func (f *fake) Snapshot() stats.Snapshot { return f.region.Snapshot() }
func (f *fake) ServerInfo() ServerInfo {
	return ServerInfo{Version: "1.0.0", State: "LIVE", HotRestartGeneration: 2, Workers: 2, PID: 42}
}
func (f *fake) Listeners() []Listener { return []Listener{{Name: "public", Address: "127.0.0.1:8080"}} }
func (f *fake) Clusters() []Cluster {
	return []Cluster{{Name: "backend", Hosts: []Host{{Address: "10.0.0.1:80", Healthy: true, RqTotal: 3}}}}
}
func (f *fake) Certs() []CertContext { return nil }
func (f *fake) ConfigDump() ([]byte, error) {
	return []byte(`{"cluster":[{"name":"b","tls":{"private_key":"PEM","password":"hunter2"}}],"ext_authz":{"api_key":"k"}}`), nil
}
func (f *fake) Ready() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ready {
		return true, "LIVE"
	}
	return false, "INITIALIZING"
}
func (f *fake) SetHealthy(h bool) { f.mu.Lock(); f.healthy = &h; f.mu.Unlock() }
func (f *fake) DrainListeners(g bool) error {
	f.mu.Lock()
	f.drained = &g
	f.mu.Unlock()
	return nil
}
func (f *fake) Loggers() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.levels {
		out[k] = v
	}
	return out
}
func (f *fake) SetLogLevel(name, level string) error {
	if level != "debug" && level != "info" {
		return errors.New("bad level")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "" {
		for k := range f.levels {
			f.levels[k] = level
		}
		return nil
	}
	f.levels[name] = level
	return nil
}
func (f *fake) ResetCounters()    { f.mu.Lock(); f.resets++; f.mu.Unlock(); f.region.ResetCounters() }
func (f *fake) ReopenLogs() error { f.mu.Lock(); f.reopened++; f.mu.Unlock(); return nil }
func (f *fake) Quit()             { close(f.quit) }

func newFake(t *testing.T) (*fake, *httptest.Server) {
	t.Helper()
	s, err := stats.NewSchema(append(stats.ServerDefs(), stats.ClusterDefs("backend")...))
	if err != nil {
		t.Fatal(err)
	}
	r, err := stats.NewRegion(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c := r.Slab(0).Cluster("backend")
	c.UpstreamRqTotal.Add(5)
	c.UpstreamRqTime.Record(2 * time.Millisecond)
	f := &fake{region: r, ready: true, levels: map[string]string{"main": "info", "upstream": "info"}, quit: make(chan struct{})}
	srv := httptest.NewServer(NewHandler(f))
	t.Cleanup(srv.Close)
	return f, srv
}

func do(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestIndexListsEveryEndpoint(t *testing.T) {
	_, srv := newFake(t)
	code, _, body := do(t, "GET", srv.URL+"/")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, p := range []string{"/ready", "/server_info", "/stats", "/stats/prometheus", "/clusters", "/listeners",
		"/config_dump", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners", "/logging",
		"/reset_counters", "/reopen_logs", "/quitquitquit"} {
		if !strings.Contains(body, " "+p+" ") {
			t.Errorf("index lacks %s", p)
		}
	}
	if code, _, _ := do(t, "GET", srv.URL+"/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestMutationsNeedPost(t *testing.T) {
	f, srv := newFake(t)
	for _, p := range []string{"/healthcheck/fail", "/healthcheck/ok", "/drain_listeners", "/reset_counters", "/reopen_logs", "/quitquitquit"} {
		code, h, _ := do(t, "GET", srv.URL+p)
		if code != 405 || h.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d Allow=%q, want 405 POST", p, code, h.Get("Allow"))
		}
	}
	if f.healthy != nil || f.drained != nil || f.resets != 0 || f.reopened != 0 {
		t.Fatal("a GET mutated state")
	}
	for _, tc := range []struct {
		path  string
		check func() bool
	}{
		{"/healthcheck/fail", func() bool { return f.healthy != nil && !*f.healthy }},
		{"/healthcheck/ok", func() bool { return f.healthy != nil && *f.healthy }},
		{"/drain_listeners?graceful", func() bool { return f.drained != nil && *f.drained }},
		{"/reset_counters", func() bool { return f.resets == 1 }},
		{"/reopen_logs", func() bool { return f.reopened == 1 }},
	} {
		if code, _, body := do(t, "POST", srv.URL+tc.path); code != 200 || body != "OK\n" {
			t.Errorf("POST %s: %d %q", tc.path, code, body)
		}
		f.mu.Lock()
		ok := tc.check()
		f.mu.Unlock()
		if !ok {
			t.Errorf("POST %s had no effect", tc.path)
		}
	}
	_, _, body := do(t, "GET", srv.URL+"/stats?filter=upstream_rq_total")
	if !strings.Contains(body, "cluster.backend.upstream_rq_total: 0") {
		t.Errorf("after reset_counters: %q", body)
	}
	if code, _, _ := do(t, "POST", srv.URL+"/quitquitquit"); code != 200 {
		t.Fatalf("quit: %d", code)
	}
	select {
	case <-f.quit:
	case <-time.After(10 * time.Second):
		t.Fatal("Quit not called")
	}
}

func TestReady(t *testing.T) {
	f, srv := newFake(t)
	if code, _, body := do(t, "GET", srv.URL+"/ready"); code != 200 || body != "LIVE\n" {
		t.Fatalf("ready: %d %q", code, body)
	}
	f.mu.Lock()
	f.ready = false
	f.mu.Unlock()
	if code, _, body := do(t, "GET", srv.URL+"/ready"); code != 503 || body != "INITIALIZING\n" {
		t.Fatalf("not ready: %d %q", code, body)
	}
}

func TestStatsEndpoints(t *testing.T) {
	_, srv := newFake(t)
	_, _, body := do(t, "GET", srv.URL+"/stats")
	if !strings.Contains(body, "cluster.backend.upstream_rq_total: 5\n") || !strings.Contains(body, "cluster.backend.upstream_rq_time: P50=") {
		t.Errorf("text: %q", body)
	}
	_, _, body = do(t, "GET", srv.URL+"/stats?usedonly")
	if strings.Contains(body, "upstream_rq_timeout") || !strings.Contains(body, "upstream_rq_total: 5") {
		t.Errorf("usedonly: %q", body)
	}
	_, _, body = do(t, "GET", srv.URL+"/stats?format=json&filter=rq_total$")
	var doc struct {
		Stats []struct {
			Name  string
			Value int
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Stats) != 1 || doc.Stats[0].Value != 5 {
		t.Errorf("json: %v %q", err, body)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/stats?filter=("); code != 400 {
		t.Errorf("bad regex: %d", code)
	}
	for _, u := range []string{"/stats/prometheus", "/stats?format=prometheus"} {
		code, h, body := do(t, "GET", srv.URL+u)
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("%s: %d %s", u, code, h.Get("Content-Type"))
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		f := fams["sluice_cluster_upstream_rq_total"]
		if f.GetType() != dto.MetricType_COUNTER || f.Metric[0].GetCounter().GetValue() != 5 || f.Metric[0].Label[0].GetValue() != "backend" {
			t.Errorf("%s: %v", u, f)
		}
		if fams["sluice_cluster_upstream_rq_time"].GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("%s: histogram type", u)
		}
	}
}

func TestInfoEndpoints(t *testing.T) {
	_, srv := newFake(t)
	_, _, body := do(t, "GET", srv.URL+"/server_info")
	var info ServerInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.HotRestartGeneration != 2 || info.State != "LIVE" {
		t.Errorf("server_info: %v %q", err, body)
	}
	if _, _, body = do(t, "GET", srv.URL+"/clusters"); !strings.Contains(body, "backend::10.0.0.1:80::health_flags::healthy\n") {
		t.Errorf("clusters: %q", body)
	}
	if _, _, body = do(t, "GET", srv.URL+"/clusters?format=json"); !strings.Contains(body, `"rq_total": 3`) {
		t.Errorf("clusters json: %q", body)
	}
	if _, _, body = do(t, "GET", srv.URL+"/listeners"); body != "public::127.0.0.1:8080\n" {
		t.Errorf("listeners: %q", body)
	}
	if _, _, body = do(t, "GET", srv.URL+"/listeners?format=json"); !strings.Contains(body, `"address": "127.0.0.1:8080"`) {
		t.Errorf("listeners json: %q", body)
	}
	// A format they do not have is refused, as /stats refuses one.
	for _, u := range []string{"/clusters?format=yaml", "/listeners?format=yaml", "/stats?format=xml"} {
		if code, _, body := do(t, "GET", srv.URL+u); code != 400 || !strings.Contains(body, "unknown format") {
			t.Errorf("%s: %d %q, want 400 naming the unknown format", u, code, body)
		}
	}
}

func TestConfigDumpRedactsSecrets(t *testing.T) {
	_, srv := newFake(t)
	_, _, body := do(t, "GET", srv.URL+"/config_dump")
	for _, secret := range []string{"PEM", "hunter2", `"k"`} {
		if strings.Contains(body, secret) {
			t.Errorf("config_dump leaks %s: %s", secret, body)
		}
	}
	if !strings.Contains(body, Redacted) || !strings.Contains(body, `"name": "b"`) {
		t.Errorf("config_dump: %s", body)
	}
}

func TestLogging(t *testing.T) {
	f, srv := newFake(t)
	if code, _, body := do(t, "GET", srv.URL+"/logging"); code != 200 || !strings.Contains(body, "main: info") {
		t.Fatalf("GET logging: %d %q", code, body)
	}
	if code, _, _ := do(t, "POST", srv.URL+"/logging?upstream=debug"); code != 200 || f.Loggers()["upstream"] != "debug" || f.Loggers()["main"] != "info" {
		t.Fatalf("POST one logger: %d %v", code, f.Loggers())
	}
	if code, _, _ := do(t, "POST", srv.URL+"/logging?level=debug"); code != 200 || f.Loggers()["main"] != "debug" {
		t.Fatalf("POST level: %d %v", code, f.Loggers())
	}
	if code, _, _ := do(t, "POST", srv.URL+"/logging?level=loud"); code != 400 {
		t.Fatalf("bad level: %d", code)
	}
}

func TestServeAnswersWhileAClientStalls(t *testing.T) {
	f, _ := newFake(t)
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(ln, NewHandler(f), nil)
	defer srv.Close()
	// A client that sends half a request head and stalls.
	stalled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.Write([]byte("GET /ready HTTP/1.1\r\nHost: x\r\n"))
	code, _, body := do(t, "GET", "http://"+ln.Addr().String()+"/ready")
	if code != 200 || body != "LIVE\n" {
		t.Fatalf("ready while another client stalls: %d %q", code, body)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	if _, err := Listen("0.0.0.0:0", false); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("0.0.0.0 accepted: %v", err)
	}
	ln, err := Listen("[::1]:0", false)
	if err == nil {
		ln.Close()
	}
	if errors.Is(err, ErrNotLoopback) {
		t.Fatal("::1 refused as non-loopback")
	}
}
