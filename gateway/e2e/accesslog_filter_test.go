package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestAccessLogFilterKeepsOnlyTheRecordsItMatches runs Envoy's access log
// filters in the real binary: of a 200, a failing health check, two 503s
// and a gRPC call whose trailers say UNAVAILABLE, the log keeps the 503s
// that are not health checks and the gRPC failure, with the operators
// that read the trailers' status and format the start time.
func TestAccessLogFilterKeepsOnlyTheRecordsItMatches(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/grpc" {
			w.Header().Set("Trailer", "grpc-status")
			w.Header().Set("content-type", "application/grpc")
			w.WriteHeader(200)
			w.Write([]byte{0, 0, 0, 0, 0})
			w.Header().Set("grpc-status", "14")
			return
		}
		w.Write([]byte("ok"))
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, fmt.Sprintf(`
[server]
workers = 1
[[listener]]
name = "http"
address = "127.0.0.1:0"
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%REQ(:PATH)%% %%RESPONSE_CODE%% %%GRPC_STATUS%% %%RESPONSE_FLAGS_LONG%% %%START_TIME(%%Y)%% %%CONNECTION_ID%%\n"
      [listener.filter_chain.filter.config.access_log.filter]
      and_filter = { filters = [
        { not_health_check_filter = {} },
        { or_filter = { filters = [
          { status_code_filter = { op = "GE", value = 500 } },
          { grpc_status_filter = { statuses = ["UNAVAILABLE", "INTERNAL"] } },
        ] } },
      ] }
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.health_check"
      config = { path = "/health", pass_through_mode = true }
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/health" }
    cluster = "dead"
    [[route_config.virtual_host.route]]
    match = { prefix = "/down" }
    cluster = "dead"
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
[[cluster]]
name = "up"
endpoints = [%q]
[[cluster]]
name = "dead"
endpoints = [%q]
connect_timeout = "1s"
`, logPath, up.Addr, testutil.DeadAddr(t)))
	base := "http://" + p.Addr("http")
	c := newClient(nil) // one connection: one worker logs the lines in order
	for _, s := range []struct {
		path, ct string
		code     int
	}{
		{"/ok", "", 200},
		{"/health", "", 503},
		{"/down", "", 503},
		{"/grpc", "application/grpc", 200},
		{"/down/last", "", 503},
	} {
		var hdr []string
		if s.ct != "" {
			hdr = []string{"content-type", s.ct}
		}
		resp, _ := get(t, c, base+s.path, hdr...)
		if resp.StatusCode != s.code {
			t.Fatalf("GET %s: status %d, want %d", s.path, resp.StatusCode, s.code)
		}
	}
	// The sink writes a worker's lines in order: once the last request's
	// line is there, every line before it that was kept is too.
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "/down/last ") {
		if time.Now().After(deadline) {
			t.Fatalf("the last request's line never came; log: %q", lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		b, err := os.ReadFile(logPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	year := time.Now().UTC().Format("2006")
	want := []string{
		"/down 503 - UpstreamConnectionFailure " + year,
		"/grpc 200 Unavailable - " + year,
		"/down/last 503 - UpstreamConnectionFailure " + year,
	}
	if len(lines) != len(want) {
		t.Fatalf("log has %d lines, want %d: %q", len(lines), len(want), lines)
	}
	var conn string
	for i, l := range lines {
		rest, id, ok := strings.Cut(l, year+" ")
		if !ok || rest+year != want[i] || id == "" || id == "0" {
			t.Errorf("line %d: %q, want %q and a connection id", i, l, want[i]+" <id>")
		}
		if conn != "" && id != conn {
			t.Errorf("line %d: connection id %s, want %s (one keep-alive connection)", i, id, conn)
		}
		conn = id
	}
}

// TestAccessLogFilterErrorNamesFileLineAndKey checks that a bad access log
// filter is refused by validate with the key of the offending value.
func TestAccessLogFilterErrorNamesFileLineAndKey(t *testing.T) {
	cfg := `[[listener]]
name = "http"
address = "127.0.0.1:0"
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = "/dev/null"
      [listener.filter_chain.filter.config.access_log.filter]
      status_code_filter = { op = "GT", value = 500 }
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    direct_response = { status = 200 }
`
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
	if code != 1 {
		t.Fatalf("validate exit code %d, want 1 for a status_code_filter with op GT; output:\n%s", code, out)
	}
	if want := fmt.Sprintf("%s:%d:", path, lineOf(t, cfg, `status_code_filter = { op = "GT"`)); !strings.Contains(out, want) {
		t.Errorf("validate output does not name %q; output:\n%s", want, out)
	}
	if want := "access_log[0].filter.status_code_filter.op"; !strings.Contains(out, want) {
		t.Errorf("validate output does not name the key %s; output:\n%s", want, out)
	}
}

// TestLocalRateLimitSetsFlagRL checks that a request the local rate limit
// refuses carries Envoy's RL flag, which an access log filter on it sees:
// of three requests against one token, the log keeps the two refused.
func TestLocalRateLimitSetsFlagRL(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, fmt.Sprintf(`
[server]
workers = 1
[[listener]]
name = "http"
address = "127.0.0.1:0"
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%REQ(:PATH)%% %%RESPONSE_CODE%% %%RESPONSE_FLAGS%% %%RESPONSE_FLAGS_LONG%%\n"
      filter = { response_flag_filter = { flags = ["RL"] } }
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.local_ratelimit"
      config = { stat_prefix = "rl", token_bucket = { max_tokens = 1, fill_interval = "1h" } }
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
[[cluster]]
name = "up"
endpoints = [%q]
`, logPath, up.Addr))
	c := newClient(nil)
	for i, want := range []int{200, 429, 429} {
		resp, _ := get(t, c, fmt.Sprintf("http://%s/r%d", p.Addr("http"), i))
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-1], "/r2 ") {
		if time.Now().After(deadline) {
			t.Fatalf("the last request's line never came; log: %q", lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		b, err := os.ReadFile(logPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	if want := []string{"/r1 429 RL RateLimited", "/r2 429 RL RateLimited"}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("log %q, want %q", lines, want)
	}
}

// TestAccessLogTimingOperators checks Envoy's timing operators on real
// requests: a body that arrives 150 ms after its head shows in
// %REQUEST_DURATION%, an upstream that answers 150 ms after the request in
// %RESPONSE_DURATION% (and not in %RESPONSE_TX_DURATION%), a retried
// request counts two attempts, and a request answered without an upstream
// has none and no upstream timings.
func TestAccessLogTimingOperators(t *testing.T) {
	const pause = 150 * time.Millisecond
	var tries sync.Map
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/slow":
			time.Sleep(pause) // the upstream's think time the log must show
		case "/retry":
			if _, again := tries.LoadOrStore(r.URL.Path, true); !again {
				w.WriteHeader(503)
				return
			}
		}
		w.Write([]byte("ok"))
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, fmt.Sprintf(`
[server]
workers = 1
[[listener]]
name = "http"
address = "127.0.0.1:0"
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      [listener.filter_chain.filter.config.access_log.json_format]
      path = "%%REQ(:PATH)%%"
      rq = "%%REQUEST_DURATION%%"
      rqtx = "%%REQUEST_TX_DURATION%%"
      rs = "%%RESPONSE_DURATION%%"
      rstx = "%%RESPONSE_TX_DURATION%%"
      tries = "%%UPSTREAM_REQUEST_ATTEMPT_COUNT%%"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/local" }
    direct_response = { status = 200, body = "here" }
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
    retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_back_off = { base_interval = "1ms" } }
[[cluster]]
name = "up"
endpoints = [%q]
`, logPath, up.Addr))
	c := newClient(nil)
	if resp, _ := get(t, c, "http://"+p.Addr("http")+"/slow"); resp.StatusCode != 200 {
		t.Fatalf("/slow: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, "http://"+p.Addr("http")+"/retry"); resp.StatusCode != 200 {
		t.Fatalf("/retry: %d", resp.StatusCode)
	}
	// A body that comes 150 ms after the head.
	conn := dial(t, p.Addr("http"))
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
	time.Sleep(pause) // the client's own pause, which the log must show
	io.WriteString(conn, "body")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/upload: %v %v", resp, err)
	}
	if resp, _ := get(t, c, "http://"+p.Addr("http")+"/local"); resp.StatusCode != 200 {
		t.Fatalf("/local: %d", resp.StatusCode)
	}
	var lines []map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want 4", len(lines))
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		lines = readJSONLines(t, logPath)
	}
	ms := func(l map[string]string, k string) int {
		n, err := strconv.Atoi(l[k])
		if err != nil {
			t.Fatalf("%s of %v is not a number", k, l)
		}
		return n
	}
	min := int(pause / time.Millisecond)
	for _, l := range lines {
		switch l["path"] {
		case "/slow":
			if ms(l, "rs") < min || ms(l, "rstx") >= min || ms(l, "rq") >= min || ms(l, "tries") != 1 {
				t.Errorf("/slow: %v; want response_duration >= %d, response_tx and request durations below, 1 try", l, min)
			}
		case "/retry":
			if ms(l, "tries") != 2 {
				t.Errorf("/retry: %v; want 2 tries", l)
			}
		case "/upload":
			if ms(l, "rq") < min || ms(l, "rqtx") < ms(l, "rq") {
				t.Errorf("/upload: %v; want request_duration >= %d and request_tx_duration after it", l, min)
			}
		case "/local":
			if l["tries"] != "0" || l["rs"] != "" || l["rstx"] != "" || l["rqtx"] != "" || l["rq"] != "0" {
				t.Errorf("/local: %v; want 0 tries, no upstream timings, request_duration 0", l)
			}
		default:
			t.Errorf("unexpected line %v", l)
		}
	}
}
