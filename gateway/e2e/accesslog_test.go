package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// accessLogConfig is one listener whose manager writes JSON access log lines
// to path, with routes that succeed, find no route, fail to connect and time
// out.
func accessLogConfig(path, up, hang, dead string) string {
	return fmt.Sprintf(`
[server]
workers = 2
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
      method = "%%REQ(:METHOD)%%"
      path = "%%REQ(:PATH)%%"
      code = "%%RESPONSE_CODE%%"
      flags = "%%RESPONSE_FLAGS%%"
      route = "%%ROUTE_NAME%%"
      cluster = "%%UPSTREAM_CLUSTER%%"
      host = "%%UPSTREAM_HOST%%"
      id = "%%REQ(X-REQUEST-ID)%%"
      protocol = "%%PROTOCOL%%"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    name = "ok"
    match = { prefix = "/ok" }
    cluster = "up"
    [[route_config.virtual_host.route]]
    name = "slow"
    match = { prefix = "/slow" }
    cluster = "hang"
    timeout = "200ms"
    [[route_config.virtual_host.route]]
    name = "down"
    match = { prefix = "/down" }
    cluster = "dead"
[[cluster]]
name = "up"
endpoints = [%q]
[[cluster]]
name = "hang"
endpoints = [%q]
[[cluster]]
name = "dead"
endpoints = [%q]
connect_timeout = "1s"
`, path, up, hang, dead)
}

func TestAccessLogRecordsEachRequestWithItsResponseFlags(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, accessLogConfig(logPath, up.Addr, hang.Addr, testutil.DeadAddr(t)))
	base := "http://" + p.Addr("http")
	c := newClient(nil)
	want := []struct {
		path, code, flags, route, cluster string
	}{
		{"/ok", "200", "-", "ok", "up"}, // Envoy's "-" for no flags, a string in JSON too
		{"/nowhere", "404", "NR", "", ""},
		{"/down", "503", "UF", "down", "dead"},
		{"/slow", "504", "UT", "slow", "hang"},
	}
	ids := map[string]string{}
	for _, w := range want {
		id := "req-" + strings.TrimPrefix(w.path, "/")
		ids[w.path] = id
		resp, _ := get(t, c, base+w.path, "x-request-id", id)
		if fmt.Sprint(resp.StatusCode) != w.code {
			t.Fatalf("GET %s: status %d, want %s", w.path, resp.StatusCode, w.code)
		}
	}
	// Lines are written by a background writer: wait until all are there.
	var lines []map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want %d", len(lines), len(want))
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		lines = readJSONLines(t, logPath)
	}
	byID := map[string]map[string]string{}
	for _, l := range lines {
		byID[l["id"]] = l
	}
	for _, w := range want {
		l := byID[ids[w.path]]
		if l == nil {
			t.Fatalf("no access log line for %s (lines: %v)", w.path, lines)
		}
		if l["method"] != "GET" || l["path"] != w.path || l["code"] != w.code || l["flags"] != w.flags ||
			l["route"] != w.route || l["cluster"] != w.cluster || l["protocol"] != "HTTP/1.1" {
			t.Errorf("access log line for %s: %v; want code %s, flags %s, route %q, cluster %q", w.path, l, w.code, w.flags, w.route, w.cluster)
		}
	}
	if l := byID[ids["/ok"]]; l["host"] != up.Addr {
		t.Errorf("upstream host %q, want %s", l["host"], up.Addr)
	}
}

func readJSONLines(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line %q is not JSON: %v", sc.Text(), err)
		}
		s := map[string]string{}
		for k, v := range m {
			if v != nil { // JSON lines carry null where text lines print "-"
				s[k] = fmt.Sprint(v)
			}
		}
		out = append(out, s)
	}
	return out
}

// TestAccessLogPrintsResponseHeaders checks %RESP(h)% on proxied responses
// over HTTP/1.1 and HTTP/2: the line shows the headers the client got
// (the upstream's own and the x-envoy-upstream-service-time sluice adds),
// not "-" because the router had let go of the response head before the
// line was written.
func TestAccessLogPrintsResponseHeaders(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-upstream", "from"+r.URL.Path)
		w.Header().Set("content-type", "text/x-test")
		w.Write([]byte("ok"))
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	hcm := fmt.Sprintf(`
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%REQ(:PATH)%% %%PROTOCOL%% %%RESP(X-UPSTREAM)%% %%RESP(content-type)%% %%RESP(x-envoy-upstream-service-time?x-none)%% %%RESP(x-missing)%%\n"
`, logPath)
	p := gwtest.Start(t, h2Config(hcm, route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
	base := "http://" + p.Addr("http")
	for _, c := range []struct {
		path   string
		client *http.Client
		proto  string
	}{
		{"/h1", newClient(nil), "HTTP/1.1"},
		{"/h2", h2cClient(nil), "HTTP/2"},
	} {
		resp, body := get(t, c.client, base+c.path)
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("x-upstream") != "from"+c.path {
			t.Fatalf("GET %s over %s: %d %q %v", c.path, c.proto, resp.StatusCode, body, resp.Header)
		}
	}
	var lines []string
	deadline := time.Now().Add(ioTimeout)
	for len(lines) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want 2: %q", len(lines), lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		b, err := os.ReadFile(logPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		lines = strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "|"))
	}
	byPath := map[string][]string{} // the workers' lines may come in either order
	for _, l := range lines {
		f := strings.Split(l, "|")
		byPath[f[0]] = f
	}
	for _, want := range []struct{ path, proto string }{{"/h1", "HTTP/1.1"}, {"/h2", "HTTP/2"}} {
		f := byPath[want.path]
		if len(f) != 6 || f[1] != want.proto || f[2] != "from"+want.path || f[3] != "text/x-test" || f[4] == "-" || f[5] != "-" {
			t.Errorf("access log line %q; want %s %s from%s text/x-test <service time> -", strings.Join(f, " "), want.path, want.proto, want.path)
		}
	}
}

// TestMalformedRequestIsCountedAndLogged sends requests sluice answers 400
// before any filter runs (a malformed header line, a malformed request
// line): each counts in downstream_rq_total as in its class, so that
// downstream_rq_4xx never exceeds it, and gets an access log line with the
// flag DPE and, as Envoy's, no request header (the head never made it
// whole) but the protocol once the request line was read.
func TestMalformedRequestIsCountedAndLogged(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	hcm := fmt.Sprintf(`
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      [listener.filter_chain.filter.config.access_log.json_format]
      method = "%%REQ(:METHOD)%%"
      path = "%%REQ(:PATH)%%"
      code = "%%RESPONSE_CODE%%"
      flags = "%%RESPONSE_FLAGS%%"
      details = "%%RESPONSE_CODE_DETAILS%%"
      protocol = "%%PROTOCOL%%"
      remote = "%%DOWNSTREAM_REMOTE_ADDRESS%%"
`, logPath)
	p := gwtest.Start(t, h2Config(hcm, route(`prefix = "/"`, "up"), cluster("up", testutil.DeadAddr(t)))+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	want := map[string]map[string]string{} // by client address
	for _, c := range []struct{ req, protocol string }{
		{"GET /bad HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n", "HTTP/1.1"},
		{"a\r\n\r\n", ""},
	} {
		conn := dial(t, p.Addr("http"))
		writeAsync(conn, []byte(c.req))
		br := bufio.NewReader(conn)
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 400 {
			t.Fatalf("%q: status %d, want 400", c.req, resp.StatusCode)
		}
		w := map[string]string{"code": "400", "flags": "DPE", "details": "http1.codec_error"}
		if c.protocol != "" {
			w["protocol"] = c.protocol
		}
		want[conn.LocalAddr().String()] = w
	}
	waitCounter(t, admin, "http.ingress_http.downstream_rq_total", 2)
	waitCounter(t, admin, "http.ingress_http.downstream_rq_4xx", 2)
	var lines []map[string]string
	for deadline := time.Now().Add(ioTimeout); len(lines) < len(want); {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want %d: %v", len(lines), len(want), lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		lines = readJSONLines(t, logPath)
	}
	for _, l := range lines {
		w := want[l["remote"]]
		delete(l, "remote")
		if fmt.Sprint(l) != fmt.Sprint(w) {
			t.Errorf("access log line %v, want %v", l, w)
		}
	}
}

// TestDefaultAccessLogShowsThePathBeforeARewrite checks Envoy's
// x-envoy-original-path, which the default format prints in place of the
// path: a prefix_rewrite sets it (the upstream gets it too), so the line
// shows the path the client asked for, and a client's own is dropped, so
// that it cannot pass another path off in the log.
func TestDefaultAccessLogShowsThePathBeforeARewrite(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s original=%s", r.URL.Path, r.Header.Get("x-envoy-original-path"))
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	hcm := fmt.Sprintf("\n      [[listener.filter_chain.filter.config.access_log]]\n      path = %q\n", logPath)
	p := gwtest.Start(t, h2Config(hcm, route(`prefix = "/api/"`, "up", `prefix_rewrite = "/v1/"`)+route(`prefix = "/"`, "up"),
		cluster("up", up.Addr)))
	c := newClient(nil)
	for _, r := range []struct{ path, spoof, upstream string }{
		{"/api/items", "", "/v1/items original=/api/items"},
		{"/plain", "/spoofed", "/plain original="},
	} {
		resp, body := get(t, c, "http://"+p.Addr("http")+r.path, "x-envoy-original-path", r.spoof)
		if resp.StatusCode != 200 || string(body) != r.upstream {
			t.Fatalf("GET %s: %d %q, want 200 %q", r.path, resp.StatusCode, body, r.upstream)
		}
	}
	var log string
	for deadline := time.Now().Add(ioTimeout); strings.Count(log, "\n") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("access log: %q, want 2 lines", log)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		b, _ := os.ReadFile(logPath)
		log = string(b)
	}
	for _, want := range []string{`"GET /api/items HTTP/1.1" 200`, `"GET /plain HTTP/1.1" 200`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
}
