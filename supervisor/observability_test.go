package supervisor_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// obsOptions add observability pieces to obsConfig.
type obsOptions struct {
	statsd    string // [statsd] address
	accessLog string // access log file of the connection manager
	filters   string // HTTP filter tables placed before the router
	plugins   string // [[plugin]] tables
	tls       string // a [listener.filter_chain.tls] table
	route     string // extra keys of the default route
	statsdTCP string // a statsd server's TCP address, reached via tcp_cluster_name
}

// obsConfig is a two-worker config with the admin API on 127.0.0.1:0, one
// listener "public" routed to up, and the pieces of o.
func obsConfig(up, ctl string, o obsOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[server]
workers = 2
gomaxprocs = 1
drain_timeout = "60s"
control_socket = %q

[admin]
address = "127.0.0.1:0"

[log]
level = "info"
format = "json"
`, ctl)
	if o.statsd != "" {
		fmt.Fprintf(&b, "\n[statsd]\naddress = %q\nprefix = \"sluice\"\nflush_interval = \"50ms\"\n", o.statsd)
	}
	if o.statsdTCP != "" {
		fmt.Fprintf(&b, "\n[statsd]\ntcp_cluster_name = \"statsd\"\nprefix = \"sluice\"\nflush_interval = \"50ms\"\n\n[[cluster]]\nname = \"statsd\"\nendpoints = [%q]\n", o.statsdTCP)
	}
	b.WriteString(o.plugins)
	b.WriteString(`
[[listener]]
name = "public"
address = "127.0.0.1:0"

  [[listener.filter_chain]]
  name = "default"
`)
	b.WriteString(o.tls)
	b.WriteString(`
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress"
    route_config = "local"
`)
	if o.accessLog != "" {
		fmt.Fprintf(&b, "\n      [[listener.filter_chain.filter.config.access_log]]\n      path = %q\n      format = \"%%REQ(:PATH)%% %%RESPONSE_CODE%%\\n\"\n", o.accessLog)
	}
	b.WriteString(o.filters)
	fmt.Fprintf(&b, `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]

    [[route_config.virtual_host.route]]
    name = "default"
    match = { prefix = "/" }
    cluster = "backend"
    %s

[[cluster]]
name = "backend"
endpoints = [%q]
`, o.route, up)
	return b.String()
}

// healthFilter is the health_check filter on /healthz.
const healthFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.health_check"
      [listener.filter_chain.filter.config.http_filter.config]
      path = "/healthz"
`

// adminAddr waits for the admin API's log line and returns its address.
func (s *sluice) adminAddr(t *testing.T) string {
	t.Helper()
	return s.wait(t, "admin API", nil, nil).str("address")
}

// adminDo sends method path to the admin API at addr and returns the
// status and body.
func adminDo(t *testing.T, method, addr, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: waitTimeout}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// counters reads every counter from the admin /stats?format=json.
func counters(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	code, body := adminDo(t, "GET", admin, "/stats?format=json")
	if code != 200 {
		t.Fatalf("/stats: %d %s", code, body)
	}
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/stats?format=json: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for _, st := range doc.Stats {
		var v float64
		if json.Unmarshal(st.Value, &v) == nil {
			out[st.Name] = v
		}
	}
	return out
}

func TestAdminAPIStatsPrometheusAndHealthCheck(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{filters: healthFilter}))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.workers(t)
	s.wait(t, "ready", nil, nil)

	if code, body := adminDo(t, "GET", admin, "/ready"); code != 200 || !strings.Contains(body, "LIVE") {
		t.Fatalf("/ready = %d %q, want 200 LIVE", code, body)
	}
	code, body := adminDo(t, "GET", admin, "/server_info")
	var info map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &info) != nil || info["state"] != "LIVE" || info["concurrency"] != float64(2) {
		t.Fatalf("/server_info = %d %s", code, body)
	}
	if code, body := adminDo(t, "GET", admin, "/listeners"); code != 200 || !strings.Contains(body, "public::"+addr) {
		t.Errorf("/listeners = %d %q, want public::%s", code, body, addr)
	}

	const n = 25
	for range n {
		if code, _ := get(t, addr, "/"); code != 200 {
			t.Fatalf("GET / = %d", code)
		}
	}
	// A worker counts a request when its stream ends, just after the last
	// byte went to the client: wait for the last one to be counted.
	c := counters(t, admin)
	for deadline := time.Now().Add(5 * time.Second); c["http.ingress.downstream_rq_2xx"] < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling the admin API, which has no wait
		c = counters(t, admin)
	}
	if c["http.ingress.downstream_rq_total"] != n || c["http.ingress.downstream_rq_2xx"] != n || c["cluster.backend.upstream_rq_total"] != n {
		t.Errorf("after %d requests: rq_total %v, rq_2xx %v, upstream_rq_total %v", n,
			c["http.ingress.downstream_rq_total"], c["http.ingress.downstream_rq_2xx"], c["cluster.backend.upstream_rq_total"])
	}
	if c["server.live"] != 1 || c["server.concurrency"] != 2 {
		t.Errorf("server.live %v, server.concurrency %v; want 1 and 2", c["server.live"], c["server.concurrency"])
	}

	// Prometheus, parsed with the Prometheus parser.
	code, body = adminDo(t, "GET", admin, "/stats/prometheus")
	if code != 200 {
		t.Fatalf("/stats/prometheus = %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /stats/prometheus: %v", err)
	}
	found := false
	for name, f := range fams {
		if !strings.Contains(name, "downstream_rq_total") || !strings.HasPrefix(name, "sluice_http") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "ingress" && m.GetCounter().GetValue() == n {
					found = true
				}
			}
		}
		if f.GetType().String() != "COUNTER" {
			t.Errorf("%s has type %s, want COUNTER", name, f.GetType())
		}
	}
	if !found {
		t.Errorf("/stats/prometheus has no downstream_rq_total counter of %d labelled ingress:\n%s", n, body)
	}
	for name := range fams {
		if !model.IsValidLegacyMetricName(name) {
			t.Errorf("metric family %q is not a valid Prometheus name", name)
		}
	}
	if f := fams["sluice_server_live"]; f == nil || f.GetType().String() != "GAUGE" || f.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("sluice_server_live = %v, want gauge 1", f)
	}

	// Health checks: answered locally, failed and passed by the admin API
	// in every worker.
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Fatalf("GET /healthz = %d, want 200", code)
	}
	if code, _ := adminDo(t, "GET", admin, "/healthcheck/fail"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /healthcheck/fail = %d, want 405", code)
	}
	if code, _ := adminDo(t, "POST", admin, "/healthcheck/fail"); code != 200 {
		t.Fatalf("POST /healthcheck/fail = %d", code)
	}
	for range 10 { // new connections: both workers
		if code, _ := get(t, addr, "/healthz"); code != 503 {
			t.Fatalf("GET /healthz after /healthcheck/fail = %d, want 503", code)
		}
	}
	if code, _ := get(t, addr, "/"); code != 200 {
		t.Errorf("GET / while health checks fail = %d, want 200", code)
	}
	// As Envoy's: the server state is DRAINING while health checks fail.
	if code, body := adminDo(t, "GET", admin, "/ready"); code != 503 || strings.TrimSpace(body) != "DRAINING" {
		t.Errorf("/ready after /healthcheck/fail = %d %q, want 503 DRAINING", code, body)
	}
	if _, body := adminDo(t, "GET", admin, "/server_info"); json.Unmarshal([]byte(body), &info) != nil || info["state"] != "DRAINING" {
		t.Errorf("/server_info after /healthcheck/fail = %s, want state DRAINING", body)
	}
	adminDo(t, "POST", admin, "/healthcheck/ok")
	if code, body := adminDo(t, "GET", admin, "/ready"); code != 200 || strings.TrimSpace(body) != "LIVE" {
		t.Errorf("/ready after /healthcheck/ok = %d %q, want 200 LIVE", code, body)
	}
	for range 10 {
		if code, _ := get(t, addr, "/healthz"); code != 200 {
			t.Fatalf("GET /healthz after /healthcheck/ok = %d, want 200", code)
		}
	}

	// /clusters shows the host and the cluster's counters.
	if code, body := adminDo(t, "GET", admin, "/clusters"); code != 200 ||
		!strings.Contains(body, "backend::"+up.addr+"::") || !strings.Contains(body, fmt.Sprintf("backend::upstream_rq_total::%d", n+1)) {
		t.Errorf("/clusters = %d %q", code, body)
	}
	// …and the host's own counters, summed over both workers.
	_, body = adminDo(t, "GET", admin, "/clusters")
	for _, want := range []string{
		fmt.Sprintf("backend::%s::health_flags::healthy\n", up.addr),
		fmt.Sprintf("backend::%s::rq_total::%d\n", up.addr, n+1),
		fmt.Sprintf("backend::%s::rq_success::%d\n", up.addr, n+1),
		fmt.Sprintf("backend::%s::rq_error::0\n", up.addr),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/clusters has no %q:\n%s", want, body)
		}
	}
	if code, body := adminDo(t, "GET", admin, "/config_dump"); code != 200 || !strings.Contains(body, "backend") {
		t.Errorf("/config_dump = %d %q", code, body)
	}

	// /logging reaches the workers.
	if code, body := adminDo(t, "POST", admin, "/logging?level=debug"); code != 200 {
		t.Fatalf("POST /logging?level=debug = %d %s", code, body)
	}
	s.wait(t, "log level changed", map[string]any{"slot": 0, "level": "debug"}, nil)
	s.wait(t, "log level changed", map[string]any{"slot": 1, "level": "debug"}, nil)
	if _, body := adminDo(t, "GET", admin, "/logging"); !strings.Contains(body, "debug") {
		t.Errorf("/logging = %q, want debug levels", body)
	}

	// /reset_counters.
	adminDo(t, "POST", admin, "/reset_counters")
	if c := counters(t, admin); c["http.ingress.downstream_rq_total"] != 0 {
		t.Errorf("after /reset_counters: rq_total %v, want 0", c["http.ingress.downstream_rq_total"])
	}

	// /quitquitquit stops everything; /ready says so until the end.
	if code, _ := adminDo(t, "POST", admin, "/quitquitquit"); code != 200 {
		t.Fatalf("POST /quitquitquit = %d", code)
	}
	if code := s.waitExit(t); code != 0 {
		t.Errorf("exit code after /quitquitquit = %d", code)
	}
}

// loadClients run keep-alive GET / loops until stopped, counting the
// requests that completed with 200 and those that failed.
type loadClients struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, addr string, n int) *loadClients {
	t.Helper()
	l := &loadClients{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var ka *keepAlive
			for {
				select {
				case <-l.stop:
					if ka != nil {
						ka.c.Close()
					}
					return
				default:
				}
				if ka == nil {
					c, err := net.DialTimeout("tcp", addr, waitTimeout)
					if err != nil {
						l.failed.Add(1)
						continue
					}
					ka = &keepAlive{c: c, br: newReader(c)}
				}
				code, _, err := ka.send("/")
				switch {
				case err != nil:
					l.failed.Add(1)
					ka.c.Close()
					ka = nil
				case code == 200:
					l.ok.Add(1)
				default:
					l.failed.Add(1)
				}
			}
		}()
	}
	return l
}

// finish stops the clients and returns the requests that completed and
// failed.
func (l *loadClients) finish() (ok, failed int64) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load()
}

// waitRequests waits until the clients have completed more than n
// requests.
func (l *loadClients) waitRequests(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for l.ok.Load() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("clients completed %d requests, want more than %d", l.ok.Load(), n)
		}
		time.Sleep(time.Millisecond) // polling the clients' progress, not synchronising
	}
}

func TestCountersSurviveWorkerKillReloadAndUpgrade(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	s := start(t, obsConfig(up.addr, ctl, obsOptions{}))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	pids := s.workers(t)
	const stat = "http.ingress.downstream_rq_2xx"

	// kill -9 of a worker under load: its slab keeps its counts and its
	// replacement counts on in it. A request in flight on the killed
	// worker may have reached its client without being counted, or been
	// counted without reaching it: only those (the clients' failures) may
	// make the counter differ from the clients' count.
	before := counters(t, admin)[stat]
	load := startLoad(t, addr, 4)
	load.waitRequests(t, 100)
	if err := syscallKill(pids[0]); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "worker ready", map[string]any{"slot": 0, "generation": 1}, func(e entry) bool { return e.int(t, "pid") != pids[0] })
	load.waitRequests(t, load.ok.Load()+100)
	ok, failed := load.finish()
	delta := waitDelta(t, admin, stat, before, ok)
	if delta < ok-failed || delta > ok+failed {
		t.Errorf("kill -9: counter delta %d, clients completed %d (%d failed)", delta, ok, failed)
	}
	t.Logf("kill -9: clients completed %d requests (%d failed), counter delta %d", ok, failed, delta)

	// A reload with a different schema (a new cluster: a new region,
	// merged while generation 1 drains, then inherited) and an upgrade
	// (the new supervisor inherits the regions and the admin listener),
	// under load: no request fails, and the counter moves by exactly the
	// requests the clients completed.
	before = counters(t, admin)[stat]
	load = startLoad(t, addr, 4)
	load.waitRequests(t, 100)
	s.rewrite(t, strings.Replace(obsConfig(up.addr, ctl, obsOptions{}), "[[cluster]]", "[[cluster]]\nname = \"spare\"\nendpoints = [\""+up.addr+"\"]\n\n[[cluster]]", 1))
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	load.waitRequests(t, load.ok.Load()+100)
	// Generation 1's region is inherited by now: nothing it counted is
	// missing.
	if done := load.ok.Load(); waitDelta(t, admin, stat, before, done) < done {
		t.Errorf("counter after the reload moved by less than the %d requests completed", done)
	}
	if out, code, _ := upgrade(t, ctl); code != 0 {
		t.Fatalf("upgrade: %d %s", code, out)
	}
	load.waitRequests(t, load.ok.Load()+100)
	ok, failed = load.finish()
	delta = waitDelta(t, admin, stat, before, ok)
	if failed != 0 || delta != ok {
		t.Errorf("reload and upgrade: counter delta %d, clients completed %d (%d failed)", delta, ok, failed)
	}
	if c := counters(t, admin); c["server.hot_restart_generation"] != 1 || c["server.worker_restarts"] != 1 {
		t.Errorf("server.hot_restart_generation %v, server.worker_restarts %v; want 1 and 1",
			c["server.hot_restart_generation"], c["server.worker_restarts"])
	}
	t.Logf("reload and upgrade: clients completed %d requests, counter delta %d", ok, delta)
}

// waitDelta returns how much stat moved since before, waiting (up to
// waitTimeout) for it to reach want: a worker counts a request when its
// stream ends, which may be just after the client read the response.
func waitDelta(t *testing.T, admin, stat string, before float64, want int64) int64 {
	t.Helper()
	var delta int64
	for deadline := time.Now().Add(waitTimeout); ; {
		delta = int64(counters(t, admin)[stat] - before)
		if delta >= want || time.Now().After(deadline) {
			return delta
		}
	}
}

// syscallKill sends SIGKILL to pid.
func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// newReader returns a reader for a keep-alive client connection.
func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// syscallSIGUSR1 makes the supervisor reopen the access logs.
var syscallSIGUSR1 = syscall.SIGUSR1

// TestUpgradeCountersTrackTunnels checks that a WebSocket upgrade counts in
// http.<prefix>.downstream_cx_upgrades_total and is active in
// downstream_cx_upgrades_active while the tunnel is open, and no longer
// once it has closed.
func TestUpgradeCountersTrackTunnels(t *testing.T) {
	t.Parallel()
	// The upstream accepts the upgrade with a 101 and then echoes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
				io.Copy(c, br)
			}()
		}
	}()
	s := start(t, obsConfig(ln.Addr().String(), controlPath(t), obsOptions{route: `upgrade = ["websocket"]`}))
	admin := s.adminAddr(t)
	c, err := net.Dial("tcp", s.listenAddr(t, "public"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(recvTimeout))
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the tunnel: %q %v", buf, err)
	}
	// The tunnel is open (the echo went through it): the counters are
	// updated before the first tunnelled byte.
	st := counters(t, admin)
	if st["http.ingress.downstream_cx_upgrades_total"] != 1 || st["http.ingress.downstream_cx_upgrades_active"] != 1 {
		t.Fatalf("while tunnelling: upgrades_total %v, upgrades_active %v; want 1 and 1",
			st["http.ingress.downstream_cx_upgrades_total"], st["http.ingress.downstream_cx_upgrades_active"])
	}
	c.Close()
	// The worker notices the close asynchronously; poll the admin API
	// until the gauge drops.
	deadline := time.Now().Add(recvTimeout)
	for {
		st = counters(t, admin)
		if st["http.ingress.downstream_cx_upgrades_active"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("downstream_cx_upgrades_active still %v %v after the client closed the tunnel",
				st["http.ingress.downstream_cx_upgrades_active"], recvTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st["http.ingress.downstream_cx_upgrades_total"] != 1 {
		t.Fatalf("after close: upgrades_total %v, want 1", st["http.ingress.downstream_cx_upgrades_total"])
	}
}

// TestDrainListenersClosesListenersAndKeepsServing checks Envoy's
// /drain_listeners semantics: the listeners close (a new connection is
// refused), the connection open at that moment finishes its request, the
// workers drain and exit without being restarted, and the supervisor with
// its admin API stays up until SIGTERM, which then exits at once. Without
// graceful, the workers are killed at once.
func TestDrainListenersClosesListenersAndKeepsServing(t *testing.T) {
	t.Parallel()
	for _, graceful := range []bool{true, false} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t)
			s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{}))
			addr := s.listenAddr(t, "public")
			admin := s.adminAddr(t)
			pids := s.workers(t)

			// A request in flight when the listeners drain.
			inflight := make(chan int, 1)
			go func() {
				resp, err := (&http.Client{Timeout: recvTimeout}).Get("http://" + addr + "/slow")
				if err != nil {
					inflight <- 0
					return
				}
				resp.Body.Close()
				inflight <- resp.StatusCode
			}()
			recv(t, up.arrived, "request at the upstream")

			path := "/drain_listeners"
			if graceful {
				path += "?graceful"
			}
			if code, body := adminDo(t, "POST", admin, path); code != 200 {
				t.Fatalf("POST %s = %d %s", path, code, body)
			}
			if graceful {
				close(up.release)
				if code := recv(t, inflight, "answer to the request in flight"); code != 200 {
					t.Fatalf("the request in flight at the drain got %d, want 200", code)
				}
			} else if code := recv(t, inflight, "end of the request in flight"); code != 0 {
				t.Fatalf("the request in flight at a non-graceful drain got %d, want its connection closed", code)
			}
			for slot, pid := range pids {
				s.wait(t, "worker exited", map[string]any{"slot": slot, "pid": pid}, nil)
			}
			if _, err := net.Dial("tcp", addr); err == nil {
				t.Fatalf("a new connection to %s was accepted after /drain_listeners", addr)
			}
			// The supervisor and its admin API are still up, not ready,
			// and restarted no worker.
			if code, _ := adminDo(t, "GET", admin, "/server_info"); code != 200 {
				t.Fatalf("GET /server_info after /drain_listeners = %d", code)
			}
			if code, _ := adminDo(t, "GET", admin, "/ready"); code != 503 {
				t.Fatalf("GET /ready after /drain_listeners = %d, want 503", code)
			}
			select {
			case <-s.exited:
				t.Fatal("the supervisor exited after /drain_listeners")
			default:
			}
			if n := s.count("worker started", nil); n != len(pids) {
				t.Fatalf("%d workers started, want %d (none restarted)", n, len(pids))
			}
			s.cmd.Process.Signal(syscall.SIGTERM)
			if code := s.waitExit(t); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}

// TestClustersCountsHostRequestsInFlightAcrossWorkerKills checks
// /clusters' per-host rq_active: a request waiting on the upstream counts
// 1, and after the worker serving it is killed with SIGKILL the count it
// held is given back when the supervisor reaps it.
func TestClustersCountsHostRequestsInFlightAcrossWorkerKills(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{}))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	pids := s.workers(t)
	active := func(n int) string { return fmt.Sprintf("backend::%s::rq_active::%d\n", up.addr, n) }

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	recv(t, up.arrived, "request at the upstream")
	if _, body := adminDo(t, "GET", admin, "/clusters"); !strings.Contains(body, active(1)) {
		t.Fatalf("/clusters while a request is in flight has no %q:\n%s", active(1), body)
	}
	// Kill the worker holding the connection (the one whose socket it is).
	pid := servingPID(t, c.LocalAddr().String(), c.RemoteAddr().String(), pids)
	if pid == 0 {
		t.Fatal("no worker holds the connection")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	s.wait(t, "worker exited", map[string]any{"pid": pid}, nil)
	if _, body := adminDo(t, "GET", admin, "/clusters"); !strings.Contains(body, active(0)) {
		t.Fatalf("/clusters after the worker was killed has no %q:\n%s", active(0), body)
	}
}

// TestAdminAnswersWhileWorkersAreStoppedOrCrashLooping checks that the admin
// API does not depend on the data plane: with every worker frozen
// (SIGSTOP, a data plane that answers nothing) /stats, /clusters and
// /server_info still answer, and while workers are killed over and over
// (a crash loop) every admin request is answered.
func TestAdminAnswersWhileWorkersAreStoppedOrCrashLooping(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{}))
	admin := s.adminAddr(t)
	pids := s.workers(t)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, path := range []string{"/stats", "/clusters", "/server_info", "/stats/prometheus"} {
		if code, _ := adminDo(t, "GET", admin, path); code != 200 {
			t.Errorf("GET %s with every worker stopped = %d, want 200", path, code)
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	// Crash loop: kill slot 0's worker as soon as each replacement starts.
	pid := pids[0]
	for i := range 5 {
		syscall.Kill(pid, syscall.SIGKILL)
		if code, _ := adminDo(t, "GET", admin, "/server_info"); code != 200 {
			t.Fatalf("GET /server_info after kill %d = %d, want 200", i, code)
		}
		// The (i+2)th start of slot 0 is the replacement of this kill.
		s.wait(t, "worker started", map[string]any{"slot": 0}, func(entry) bool {
			return s.count("worker started", map[string]any{"slot": 0}) >= i+2
		})
		pid = s.workerPID(t, 0)
	}
	if code, body := adminDo(t, "GET", admin, "/stats?filter=worker_restarts"); code != 200 || !strings.Contains(body, "server.worker_restarts") {
		t.Fatalf("/stats during the crash loop = %d %q", code, body)
	}
}

// workerPID returns the pid of the latest "worker started" line of slot.
func (s *sluice) workerPID(t *testing.T, slot int) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	pid := 0
	for _, e := range s.lines {
		if e.str("msg") == "worker started" && fieldsEqual(e, map[string]any{"slot": slot}) {
			pid = e.int(t, "pid")
		}
	}
	return pid
}
