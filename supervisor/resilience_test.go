package supervisor_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHost is an upstream that answers /healthz with 200 while healthy is
// set (503 otherwise), every other path with status (200 when 0), and
// counts what it gets. /slow signals on arrived and waits for release.
type fakeHost struct {
	addr    string
	healthy atomic.Bool
	status  atomic.Int32
	checks  atomic.Int64 // /healthz requests
	served  atomic.Int64 // other requests
	arrived chan struct{}
	release chan struct{}
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeHost(t, ln)
}

// serveFakeHost serves a fakeHost on ln.
func serveFakeHost(t *testing.T, ln net.Listener) *fakeHost {
	t.Helper()
	h := &fakeHost{addr: ln.Addr().String(), arrived: make(chan struct{}, 16), release: make(chan struct{})}
	h.healthy.Store(true)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			h.checks.Add(1)
			if !h.healthy.Load() {
				w.WriteHeader(503)
			}
			return
		case "/slow":
			h.served.Add(1)
			h.arrived <- struct{}{}
			<-h.release
		default:
			h.served.Add(1)
		}
		if st := h.status.Load(); st != 0 {
			w.WriteHeader(int(st))
		}
		io.WriteString(w, "from "+h.addr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		srv.Close()
	})
	return h
}

// resilienceConfig is a two-worker config with the admin API, one listener
// "public" routed to cluster "backend" over hosts, with the cluster's
// extra tables and the route's extra keys.
func resilienceConfig(ctl string, hosts []string, clusterExtra, routeExtra string) string {
	cfg := obsConfig("HOSTS", ctl, obsOptions{})
	cfg = strings.Replace(cfg, `endpoints = ["HOSTS"]`, `endpoints = ["`+strings.Join(hosts, `", "`)+`"]`+"\n"+clusterExtra, 1)
	return strings.Replace(cfg, `    cluster = "backend"`, `    cluster = "backend"`+"\n"+routeExtra, 1)
}

func TestActiveHealthChecksSteerTrafficAndRunOnceAcrossWorkers(t *testing.T) {
	t.Parallel()
	good, bad := newFakeHost(t), newFakeHost(t)
	bad.healthy.Store(false)
	s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, `
  [[cluster.health_check]]
  type = "http"
  interval = "50ms"
  no_traffic_interval = "50ms"
  timeout = "1s"
  unhealthy_threshold = 1
  healthy_threshold = 1
  http = { path = "/healthz" }
`, ""))
	addr := s.listenAddr(t, "public")
	s.wait(t, "health check changed host", map[string]any{"host": good.addr, "healthy": true}, nil)
	s.wait(t, "ready", nil, nil)
	for range 20 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+good.addr {
			t.Fatalf("GET / = %d %q, want 200 from the healthy host %s", code, body, good.addr)
		}
	}
	if n := bad.served.Load(); n != 0 {
		t.Fatalf("the failed host got %d requests", n)
	}
	// Both hosts were checked, by one checker: the supervisor (the checks
	// of two workers would have come in pairs; here the healthy host went
	// from failed to healthy on its first check).
	if bad.checks.Load() == 0 {
		t.Fatal("the failed host was never health-checked")
	}
	bad.healthy.Store(true)
	s.wait(t, "health check changed host", map[string]any{"host": bad.addr, "healthy": true}, nil)
	seen := map[string]bool{}
	for range 20 {
		_, body := get(t, addr, "/")
		seen[body] = true
	}
	if !seen["from "+bad.addr] || !seen["from "+good.addr] {
		t.Fatalf("after the host recovered, responses came from %v; want both hosts", seen)
	}
	good.healthy.Store(false)
	s.wait(t, "health check changed host", map[string]any{"host": good.addr, "healthy": false}, nil)
	before := good.served.Load()
	for range 10 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+bad.addr {
			t.Fatalf("GET / = %d %q, want 200 from %s", code, body, bad.addr)
		}
	}
	if good.served.Load() != before {
		t.Fatal("a host failed by its health check still got requests")
	}
}

func TestRetriesOnAnotherHostAndOutlierEjection(t *testing.T) {
	t.Parallel()
	good, bad := newFakeHost(t), newFakeHost(t)
	bad.status.Store(503)
	s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, `
  [cluster.outlier_detection]
  consecutive_5xx = 3
  max_ejection_percent = 50
  base_ejection_time = "60s"
`, `    retry_policy = { retry_on = ["5xx"], num_retries = 2, retry_host_predicate = ["previous_hosts"] }
`))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	// Every client request succeeds: a 503 from the bad host is retried on
	// the good one. Until the bad host is ejected by 3 consecutive 503s
	// (counted across both workers, in the shared region).
	for range 12 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+good.addr {
			t.Fatalf("GET / = %d %q, want 200 from %s", code, body, good.addr)
		}
	}
	s.wait(t, "outlier ejected host", map[string]any{"host": bad.addr}, nil)
	served := bad.served.Load()
	if served != 3 {
		t.Errorf("the bad host served %d requests before its ejection; want 3 (consecutive_5xx)", served)
	}
	for range 20 {
		if code, _ := get(t, addr, "/"); code != 200 {
			t.Fatalf("GET / = %d after the ejection", code)
		}
	}
	if n := bad.served.Load(); n != served {
		t.Fatalf("the ejected host got %d more requests", n-served)
	}
	c := counters(t, admin)
	if c["cluster.backend.upstream_rq_retry"] != float64(served) || c["cluster.backend.upstream_rq_retry_success"] != float64(served) {
		t.Errorf("upstream_rq_retry %v, upstream_rq_retry_success %v; want %d each", c["cluster.backend.upstream_rq_retry"],
			c["cluster.backend.upstream_rq_retry_success"], served)
	}
	if c["cluster.backend.upstream_rq_5xx"] != float64(served) {
		t.Errorf("upstream_rq_5xx %v, want %d", c["cluster.backend.upstream_rq_5xx"], served)
	}
	// /clusters shows the ejection and each host's own request counts.
	_, body := adminDo(t, "GET", admin, "/clusters")
	for _, want := range []string{
		fmt.Sprintf("backend::%s::health_flags::/failed_outlier_check\n", bad.addr),
		fmt.Sprintf("backend::%s::rq_total::%d\n", bad.addr, served),
		fmt.Sprintf("backend::%s::rq_error::%d\n", bad.addr, served),
		fmt.Sprintf("backend::%s::health_flags::healthy\n", good.addr),
		fmt.Sprintf("backend::%s::rq_total::%d\n", good.addr, 32),
		fmt.Sprintf("backend::%s::rq_error::0\n", good.addr),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/clusters has no %q:\n%s", want, body)
		}
	}
}

func TestCircuitBreakerIsGlobalAcrossWorkers(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	s := start(t, resilienceConfig(controlPath(t), []string{h.addr}, `
  [cluster.circuit_breakers]
  max_requests = 1
`, ""))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	slow := make(chan int, 1)
	go func() {
		code, _ := getNoFail(addr, "/slow")
		slow <- code
	}()
	recv(t, h.arrived, "request at the upstream")
	// Whichever worker takes them, the next requests find the cluster's
	// one request slot taken.
	for range 6 {
		if code, _ := get(t, addr, "/"); code != 503 {
			t.Fatalf("GET / while the breaker is full = %d, want 503", code)
		}
	}
	close(h.release)
	if code := recv(t, slow, "answer to the held request"); code != 200 {
		t.Fatalf("the request holding the breaker got %d", code)
	}
	// The slot is given back when the stream ends in the worker, which may
	// be just after the client read the last byte: wait for it.
	refused := 6
	deadline := time.Now().Add(waitTimeout)
	for {
		code, _ := get(t, addr, "/")
		if code == 200 {
			break
		}
		refused++
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("GET / after the breaker emptied = %d", code)
		}
	}
	if c := counters(t, admin); c["cluster.backend.upstream_rq_pending_overflow"] != float64(refused) {
		t.Errorf("upstream_rq_pending_overflow = %v, want %d", c["cluster.backend.upstream_rq_pending_overflow"], refused)
	}
}

// getNoFail is get for goroutines other than the test's.
func getNoFail(addr, path string) (int, error) {
	c := &http.Client{Timeout: recvTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, nil
}

// TestRetryBudgetReplacesMaxRetries checks the circuit breakers'
// retry_budget: with a budget of 0 % and no minimum no request is retried
// (each 503 of the bad host reaches the client and counts as a retry
// overflow), while 100 % of the one active request allows its retry, so
// every client request succeeds on the good host. Either way each 503
// counts once in upstream_rq_5xx.
func TestRetryBudgetReplacesMaxRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		percent int
		retried bool
	}{{"zero budget", 0, false}, {"full budget", 100, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good, bad := newFakeHost(t), newFakeHost(t)
			bad.status.Store(503)
			s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, fmt.Sprintf(`
  [cluster.circuit_breakers]
  max_retries = 1000
  retry_budget = { budget_percent = %d.0, min_retry_concurrency = 0 }
`, tc.percent), `    retry_policy = { retry_on = ["5xx"], num_retries = 2, retry_host_predicate = ["previous_hosts"] }
`))
			addr := s.listenAddr(t, "public")
			admin := s.adminAddr(t)
			s.wait(t, "ready", nil, nil)
			failed := 0
			for range 10 {
				if code, _ := get(t, addr, "/"); code != 200 {
					failed++
				}
			}
			served := int(bad.served.Load())
			if served == 0 {
				t.Fatal("the bad host got no request")
			}
			c := counters(t, admin)
			// Each 503 counts once in upstream_rq_5xx, whether it was
			// retried or, the budget refusing, passed on.
			if c["cluster.backend.upstream_rq_5xx"] != float64(served) {
				t.Errorf("upstream_rq_5xx = %v, want %d (one per 503 of the bad host)", c["cluster.backend.upstream_rq_5xx"], served)
			}
			if tc.retried {
				if failed != 0 || c["cluster.backend.upstream_rq_retry"] != float64(served) {
					t.Fatalf("%d of 10 failed, %v retries; want none failed and %d retries (one per 503)", failed,
						c["cluster.backend.upstream_rq_retry"], served)
				}
				return
			}
			if failed != served || c["cluster.backend.upstream_rq_retry_overflow"] != float64(served) || c["cluster.backend.upstream_rq_retry"] != 0 {
				t.Fatalf("%d of 10 failed, retry overflow %v, retries %v; want %d failed and overflowed (the bad host's 503s), no retry",
					failed, c["cluster.backend.upstream_rq_retry_overflow"], c["cluster.backend.upstream_rq_retry"], served)
			}
		})
	}
}

// highRoute sends /high/... to the backend at routing priority high.
const highRoute = `    [[route_config.virtual_host.route]]
    name = "high"
    match = { prefix = "/high/" }
    prefix_rewrite = "/"
    cluster = "backend"
    priority = "high"

`

// routesBeforeDefault inserts routes (TOML route tables) before the
// default route of a resilienceConfig, so that they match first.
func routesBeforeDefault(t *testing.T, cfg, routes string) string {
	t.Helper()
	const dflt = "    [[route_config.virtual_host.route]]\n    name = \"default\""
	if !strings.Contains(cfg, dflt) {
		t.Fatal("config has no default route to put routes before")
	}
	return strings.Replace(cfg, dflt, routes+dflt, 1)
}

// TestCircuitBreakersPerPriority checks that a route with priority = "high"
// counts against the cluster's [circuit_breakers.high] thresholds, apart
// from the default priority's: with one request slot each, a held default
// request refuses default requests but not high ones, and the other way
// round.
func TestCircuitBreakersPerPriority(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	cfg := resilienceConfig(controlPath(t), []string{h.addr}, `
  [cluster.circuit_breakers]
  max_requests = 1
  [cluster.circuit_breakers.high]
  max_requests = 1
`, "")
	cfg = routesBeforeDefault(t, cfg, highRoute)
	s := start(t, cfg)
	addr := s.listenAddr(t, "public")
	s.wait(t, "ready", nil, nil)
	held := make(chan int, 2)
	// hold sends a request the upstream keeps until release. A slot is
	// given back when the stream ends in the worker, which may be just
	// after the client read the last byte of the previous request: a 503
	// before the request arrived is retried until waitTimeout.
	hold := func(path string) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			go func() {
				code, _ := getNoFail(addr, path)
				held <- code
			}()
			select {
			case <-h.arrived:
				return
			case code := <-held:
				if code != 503 {
					t.Fatalf("%s ended with %d before reaching the upstream", path, code)
				}
			case <-time.After(recvTimeout):
				t.Fatalf("%s did not reach the upstream within %v", path, recvTimeout)
			}
			select {
			case <-deadline:
				t.Fatalf("%s still refused with 503 after %v", path, waitTimeout)
			default:
			}
		}
	}
	hold("/slow")
	if code, _ := get(t, addr, "/"); code != 503 {
		t.Fatalf("default request with the default slot taken = %d, want 503", code)
	}
	if code, body := get(t, addr, "/high/x"); code != 200 {
		t.Fatalf("high-priority request with only the default slot taken = %d %q, want 200", code, body)
	}
	hold("/high/slow")
	if code, _ := get(t, addr, "/high/x"); code != 503 {
		t.Fatalf("high-priority request with the high slot taken = %d, want 503", code)
	}
	close(h.release)
	for range 2 {
		if code := recv(t, held, "answer to a held request"); code != 200 {
			t.Fatalf("a request holding a breaker got %d", code)
		}
	}
}

// TestMaxConnectionsPerPriority checks Envoy's max_connections: each
// routing priority has its own pools and limit; a request that finds its
// priority's connections at the limit waits, pending (within
// max_pending_requests), until a connection is free or its route timeout
// passes (504 UT); a request beyond max_pending_requests is refused (503
// UO). One worker, so that every request meets the same pools (a pool with
// no connection may always open one, as in Envoy).
func TestMaxConnectionsPerPriority(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	cfg := resilienceConfig(controlPath(t), []string{h.addr}, `
  [cluster.circuit_breakers]
  max_connections = 1
  max_pending_requests = 1
  [cluster.circuit_breakers.high]
  max_connections = 1
`, "")
	if !strings.Contains(cfg, "workers = 2\n") {
		t.Fatal("config has no workers = 2 to replace")
	}
	cfg = strings.Replace(cfg, "workers = 2\n", "workers = 1\n", 1)
	cfg = routesBeforeDefault(t, cfg, highRoute+`    [[route_config.virtual_host.route]]
    name = "timed"
    match = { prefix = "/timed/" }
    prefix_rewrite = "/"
    cluster = "backend"
    timeout = "300ms"

`)
	s := start(t, cfg)
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	held := make(chan int, 3)
	send := func(path string) {
		go func() {
			code, _ := getNoFail(addr, path)
			held <- code
		}()
	}
	hold := func(path string) {
		t.Helper()
		send(path)
		select {
		case <-h.arrived:
		case code := <-held:
			t.Fatalf("GET %s answered %d instead of reaching the upstream", path, code)
		case <-time.After(recvTimeout):
			t.Fatalf("GET %s did not reach the upstream within %v", path, recvTimeout)
		}
	}
	stat := func(name string) float64 { return counters(t, admin)["cluster.backend."+name] }

	hold("/slow") // the default priority's one connection is busy
	began := time.Now()
	if code, _ := get(t, addr, "/timed/x"); code != 504 {
		t.Fatalf("request waiting for the busy connection past its 300ms route timeout = %d, want 504", code)
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Fatalf("the 504 came after %v, before the route timeout", d)
	}
	// A request without a short timeout waits, pending, for the connection.
	send("/")
	for deadline := time.Now().Add(waitTimeout); stat("upstream_rq_pending_active") != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("upstream_rq_pending_active = %v, want 1 request waiting", stat("upstream_rq_pending_active"))
		}
		time.Sleep(10 * time.Millisecond) // polling the admin API
	}
	// It holds the one max_pending_requests unit: the next is refused.
	if code, _ := get(t, addr, "/x"); code != 503 {
		t.Fatalf("request beyond max_pending_requests = %d, want 503", code)
	}
	// The high priority's pool is its own: the default connection being
	// busy (and at its limit) does not stop it.
	hold("/high/slow")
	close(h.release)
	for range 3 {
		if code := recv(t, held, "answer to a held or waiting request"); code != 200 {
			t.Fatalf("a request holding or waiting for its priority's connection got %d", code)
		}
	}
	for name, want := range map[string]float64{
		"upstream_cx_overflow":         2, // the timed request and the waiting one
		"upstream_rq_pending_total":    2,
		"upstream_rq_pending_active":   0,
		"upstream_rq_pending_overflow": 1,
		"upstream_rq_timeout":          1,
	} {
		if got := stat(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
