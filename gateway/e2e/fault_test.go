package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// Tests of sluice.filters.http.fault: aborts and delays, configured or
// asked for by request headers, per route, bounded by max_active_faults.

const faultName = "sluice.filters.http.fault"

// faultConfig is a one-worker config with the admin API and a listener
// "http" (stat_prefix ingress_http) whose manager logs "<code> <flags>
// <details> <path>" lines to logPath and runs the fault filter with the
// key lines faultBody before the router, on the given routes and
// clusters.
func faultConfig(logPath, faultBody, routes string, clusters ...string) string {
	return fmt.Sprintf(`
[server]
workers = 1
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "http"
address = "127.0.0.1:0"
  [[listener.filter_chain]]
  name = "default"
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%RESPONSE_CODE%% %%RESPONSE_FLAGS%% %%RESPONSE_CODE_DETAILS%% %%REQ(:PATH)%%\n"
      [[listener.filter_chain.filter.config.http_filter]]
      name = %q
      [listener.filter_chain.filter.config.http_filter.config]
      %s
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
`, logPath, faultName, faultBody) + routes + "\n" + strings.Join(clusters, "\n")
}

// startFault starts sluice with cfg and returns it and its admin address.
func startFault(t *testing.T, cfg string) (*gwtest.Proxy, string) {
	t.Helper()
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	return p, admin
}

// upUpstream answers "up" and counts requests.
func upUpstream(t *testing.T) *testutil.Server {
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "up")
	}))
}

// waitStat polls the admin stats until name has the value want.
func waitStat(t *testing.T, admin, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		got, ok := adminCounters(t, admin)[name]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v", name, got, ok, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultAbortAnswersLocallyWithFlagFI: with abort 503 at 100%, every
// request gets the filter's 503 "fault filter abort" without reaching the
// upstream, logged with flag FI and details fault_filter_abort, over
// HTTP/1.1 and h2c; a route whose per-route table sets the percentage to
// 0 passes, one with disabled = true passes, and one with its own abort
// status answers with it.
func TestFaultAbortAnswersLocallyWithFlagFI(t *testing.T) {
	up := upUpstream(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	routes := route(`prefix = "/zero"`, "up") + perFilter("route", faultName, `abort = { http_status = 503, percentage = 0 }`) +
		route(`prefix = "/off"`, "up") + perFilter("route", faultName, `disabled = true`) +
		route(`prefix = "/teapot"`, "up") + perFilter("route", faultName, `abort = { http_status = 418, percentage = 100.0 }`) +
		route(`prefix = "/"`, "up")
	p, admin := startFault(t, faultConfig(logPath, `abort = { http_status = 503, percentage = 100 }`, routes, cluster("up", up.Addr)))
	base := "http://" + p.Addr("http")
	aborts := 0
	for _, proto := range protocols {
		c := proto.client()
		for _, tc := range []struct {
			path string
			code int
			body string
		}{
			{"/x", 503, "fault filter abort"},
			{"/zero/x", 200, "up"},
			{"/off/x", 200, "up"},
			{"/teapot/x", 418, "fault filter abort"},
		} {
			before := up.RequestCount()
			resp, body := get(t, c, base+tc.path)
			reached := up.RequestCount() - before
			if resp.StatusCode != tc.code || string(body) != tc.body || reached != int64(map[bool]int{true: 1}[tc.code == 200]) {
				t.Errorf("%s %s: %d %q, upstream saw %d; want %d %q", proto.name, tc.path, resp.StatusCode, body, reached, tc.code, tc.body)
			}
			if tc.code != 200 {
				aborts++
			}
		}
	}
	waitLogLine(t, logPath, "503 FI fault_filter_abort /x")
	waitLogLine(t, logPath, "418 FI fault_filter_abort /teapot/x")
	waitLogLine(t, logPath, "200 - - /zero/x")
	waitStat(t, admin, "http.ingress_http.fault.aborts_injected", float64(aborts))
}

// TestFaultDelayHoldsTheRequestThenAborts: a fixed delay holds each
// request at least its length before it reaches the upstream, with flag
// DI; a route whose table also aborts answers after the delay, with
// DI and FI. A POST's body waits out the delay and reaches the upstream
// whole.
func TestFaultDelayHoldsTheRequestThenAborts(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "up:"+string(b))
	}))
	const delay = 300 * time.Millisecond
	logPath := filepath.Join(t.TempDir(), "access.log")
	routes := route(`prefix = "/both"`, "up") +
		perFilter("route", faultName, `delay = { fixed_delay = "300ms" }`, `abort = { http_status = 500 }`) +
		route(`prefix = "/"`, "up")
	p, admin := startFault(t, faultConfig(logPath, `delay = { fixed_delay = "300ms", percentage = 100 }`, routes, cluster("up", up.Addr)))
	base := "http://" + p.Addr("http")
	for _, proto := range protocols {
		c := proto.client()
		start := time.Now()
		resp, body := get(t, c, base+"/slow")
		if el := time.Since(start); el < delay || resp.StatusCode != 200 || string(body) != "up:" {
			t.Errorf("%s GET /slow: %d %q after %v; want the upstream's 200 after at least %v", proto.name, resp.StatusCode, body, el, delay)
		}
		start = time.Now()
		req, _ := http.NewRequest("POST", base+"/post", strings.NewReader("payload"))
		resp, body = do(t, c, req)
		if el := time.Since(start); el < delay || resp.StatusCode != 200 || string(body) != "up:payload" {
			t.Errorf("%s POST /post: %d %q after %v; want 200 \"up:payload\" after at least %v", proto.name, resp.StatusCode, body, el, delay)
		}
		before := up.RequestCount()
		start = time.Now()
		resp, body = get(t, c, base+"/both")
		if el := time.Since(start); el < delay || resp.StatusCode != 500 || string(body) != "fault filter abort" || up.RequestCount() != before {
			t.Errorf("%s GET /both: %d %q after %v; want the abort's 500 after at least %v, nothing upstream", proto.name, resp.StatusCode, body, el, delay)
		}
	}
	waitLogLine(t, logPath, "200 DI - /slow")
	waitLogLine(t, logPath, "500 FI,DI fault_filter_abort /both")
	waitStat(t, admin, "http.ingress_http.fault.delays_injected", 6)
	waitStat(t, admin, "http.ingress_http.fault.aborts_injected", 2)
	waitStat(t, admin, "http.ingress_http.fault.active_faults", 0)
}

// TestFaultHeadersControlFaultsOnlyWhenEnabled: with header_abort and
// header_delay, a request's x-envoy-fault-* headers pick its abort status
// and delay (and a percentage header of 0 turns the abort off); a request
// without them passes. On a route whose table configures a fixed abort at
// 0% instead, the same headers do nothing.
func TestFaultHeadersControlFaultsOnlyWhenEnabled(t *testing.T) {
	up := upUpstream(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	routes := route(`prefix = "/fixed"`, "up") + perFilter("route", faultName, `abort = { http_status = 503, percentage = 0 }`) +
		route(`prefix = "/"`, "up")
	p, _ := startFault(t, faultConfig(logPath, "abort = { header_abort = true }\n      delay = { header_delay = true }", routes, cluster("up", up.Addr)))
	base := "http://" + p.Addr("http")
	for _, proto := range protocols {
		c := proto.client()
		for _, tc := range []struct {
			path     string
			hdr      []string
			code     int
			minDelay time.Duration
		}{
			{"/plain", nil, 200, 0},
			{"/abort", []string{"x-envoy-fault-abort-request", "429"}, 429, 0},
			{"/abort-off", []string{"x-envoy-fault-abort-request", "429", "x-envoy-fault-abort-request-percentage", "0"}, 200, 0},
			{"/abort-bad", []string{"x-envoy-fault-abort-request", "42"}, 200, 0},
			{"/delay", []string{"x-envoy-fault-delay-request", "250"}, 200, 250 * time.Millisecond},
			{"/delay-abort", []string{"x-envoy-fault-delay-request", "250", "x-envoy-fault-abort-request", "502"}, 502, 250 * time.Millisecond},
			{"/fixed/a", []string{"x-envoy-fault-abort-request", "429", "x-envoy-fault-delay-request", "5000"}, 200, 0},
		} {
			before := up.RequestCount()
			start := time.Now()
			resp, _ := get(t, c, base+tc.path, tc.hdr...)
			el := time.Since(start)
			reached := up.RequestCount() - before
			if resp.StatusCode != tc.code || el < tc.minDelay || (reached == 1) != (tc.code == 200) {
				t.Errorf("%s %s %v: %d after %v, upstream saw %d; want %d after at least %v", proto.name, tc.path, tc.hdr, resp.StatusCode, el, reached, tc.code, tc.minDelay)
			}
			if tc.path == "/fixed/a" && el > 4*time.Second {
				t.Errorf("%s %s: took %v: the delay header applied on a route without header_delay", proto.name, tc.path, el)
			}
		}
	}
	waitLogLine(t, logPath, "429 FI fault_filter_abort /abort")
	waitLogLine(t, logPath, "200 DI - /delay")
	waitLogLine(t, logPath, "200 - - /fixed/a")
}

// TestFaultGRPCAbortIsAGRPCStatus: an abort with grpc_status = 14 answers
// a gRPC call with a trailers-only response carrying UNAVAILABLE and the
// message "fault filter abort", and the header-controlled gRPC status of
// x-envoy-fault-abort-grpc-request on another route; nothing reaches the
// server.
func TestFaultGRPCAbortIsAGRPCStatus(t *testing.T) {
	up := grpcHealthUpstream(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	routes := route(`prefix = "/grpc.health.v1.Health/"`, "up")
	p, _ := startFault(t, faultConfig(logPath, `abort = { grpc_status = 14 }`, routes, cluster("up", up)+"protocol = \"http2\"\n"))
	hc := grpcDial(t, p.Addr("http"))
	_, err := grpcCheck(hc, "up")
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || st.Message() != "fault filter abort" {
		t.Fatalf("Check: %v; want UNAVAILABLE \"fault filter abort\"", err)
	}
	waitLogLine(t, logPath, "200 FI fault_filter_abort /grpc.health.v1.Health/Check")

	logPath = filepath.Join(t.TempDir(), "access.log")
	p, _ = startFault(t, faultConfig(logPath, `abort = { header_abort = true }`, routes, cluster("up", up)+"protocol = \"http2\"\n"))
	hc = grpcDial(t, p.Addr("http"))
	if resp, err := grpcCheck(hc, "up"); err != nil || resp == nil {
		t.Fatalf("Check without the header: %v, %v; want SERVING", resp, err)
	}
	_, err = grpcCheck(hc, "up", "x-envoy-fault-abort-grpc-request", "8")
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted {
		t.Fatalf("Check with x-envoy-fault-abort-grpc-request 8: %v; want RESOURCE_EXHAUSTED", err)
	}
}

// TestFaultMaxActiveFaultsAndClientGone: with max_active_faults = 1, a
// request delayed for a long time holds the one slot (active_faults 1); a
// second request that asks for a delay gets none (faults_overflow 1) and
// goes straight through. When the held client goes away (an HTTP/1.1
// connection closed, then an HTTP/2 stream cancelled) the stream ends
// without reaching the upstream and active_faults returns to 0.
func TestFaultMaxActiveFaultsAndClientGone(t *testing.T) {
	up := upUpstream(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	p, admin := startFault(t, faultConfig(logPath, "max_active_faults = 1\n      delay = { header_delay = true }",
		route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
	addr := p.Addr("http")
	const gauge = "http.ingress_http.fault.active_faults"

	// HTTP/1.1: a raw connection whose request waits 60s.
	conn := dial(t, addr)
	writeAsync(conn, []byte("GET /held HTTP/1.1\r\nHost: x\r\nx-envoy-fault-delay-request: 60000\r\n\r\n"))
	waitStat(t, admin, gauge, 1)
	start := time.Now()
	resp, body := get(t, newClient(nil), "http://"+addr+"/free", "x-envoy-fault-delay-request", "60000")
	if resp.StatusCode != 200 || string(body) != "up" || time.Since(start) > 30*time.Second {
		t.Fatalf("second request: %d %q after %v; want the upstream's 200 without the delay", resp.StatusCode, body, time.Since(start))
	}
	waitStat(t, admin, "http.ingress_http.fault.faults_overflow", 1)
	conn.Close()
	waitStat(t, admin, gauge, 0)
	waitLogLine(t, logPath, "DC,DI", "/held")

	// HTTP/2: a stream cancelled by its client.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/held2", nil)
		req.Header.Set("x-envoy-fault-delay-request", "60000")
		resp, err := h2cClient(nil).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitStat(t, admin, gauge, 1)
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the cancelled HTTP/2 request got a response")
		}
	case <-time.After(ioTimeout):
		t.Fatal("the cancelled HTTP/2 request did not return")
	}
	waitStat(t, admin, gauge, 0)
	waitLogLine(t, logPath, "DC,DI", "/held2")
	if n := up.RequestCount(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the overflowed one)", n)
	}
}

// TestFaultResponseRateLimitPacesTheBody: with response_rate_limit at 4
// KiB/s, an 8 KiB response body takes about two seconds to arrive whole
// (the first sixteenth of a second's worth goes at once), over HTTP/1.1
// and h2c. On a route whose table limits by x-envoy-fault-throughput-response
// instead, a request asking for 4 KiB/s is paced the same way and one
// without the header is not limited; response_rl_injected counts the
// limited ones.
func TestFaultResponseRateLimitPacesTheBody(t *testing.T) {
	payload := strings.Repeat("0123456789abcdef", 512) // 8 KiB
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, payload)
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	routes := route(`prefix = "/hdr"`, "up") + perFilter("route", faultName, `response_rate_limit = { header_limit = true }`) +
		route(`prefix = "/"`, "up")
	p, admin := startFault(t, faultConfig(logPath, `response_rate_limit = { fixed_limit_kbps = 4, percentage = 100 }`, routes, cluster("up", up.Addr)))
	base := "http://" + p.Addr("http")
	const minTime = 1500 * time.Millisecond // (8192-256) bytes at 4096 B/s: 1.94s
	limited := 0
	for _, proto := range protocols {
		c := proto.client()
		for _, tc := range []struct {
			path    string
			hdr     []string
			limited bool
		}{
			{"/fixed", nil, true},
			{"/hdr/on", []string{"x-envoy-fault-throughput-response", "4"}, true},
			{"/hdr/off", nil, false},
		} {
			start := time.Now()
			resp, body := get(t, c, base+tc.path, tc.hdr...)
			el := time.Since(start)
			if resp.StatusCode != 200 || string(body) != payload {
				t.Fatalf("%s %s: %d with %d body bytes; want 200 and the whole 8 KiB", proto.name, tc.path, resp.StatusCode, len(body))
			}
			if tc.limited && el < minTime {
				t.Errorf("%s %s: the body arrived in %v; want at least %v at 4 KiB/s", proto.name, tc.path, el, minTime)
			}
			if tc.limited {
				limited++
			}
		}
	}
	waitStat(t, admin, "http.ingress_http.fault.response_rl_injected", float64(limited))
	waitStat(t, admin, "http.ingress_http.fault.active_faults", 0)
}
