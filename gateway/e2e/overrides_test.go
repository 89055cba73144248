package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// The router's per-request override headers (x-envoy-upstream-rq-*,
// x-envoy-retry-*, x-envoy-max-retries, x-envoy-retriable-status-codes),
// gRPC retry conditions and grpc-timeout, end to end: an internal client
// (127.0.0.1, the default internal range) changes the request's timeouts
// and retries with them, and the upstream never sees them; an external one
// (internal_address_config with no ranges) changes nothing.

// externalHCM makes every client external.
const externalHCM = `internal_address_config = { cidr_ranges = [] }`

// clientKinds are the downstream protocols the override tests run over.
var clientKinds = []struct {
	name string
	new  func() *http.Client
}{
	{"http1", func() *http.Client { return newClient(nil) }},
	{"http2", func() *http.Client { return h2cClient(nil) }},
}

// scriptedUpstream serves requests by the X-Test-* headers they carry, and
// counts the tries of each X-Test-Key:
//   - X-Test-Fail: n, X-Test-Status: s: the first n tries are answered s;
//   - X-Test-Hang-First: 1: the first try gets no answer until the proxy
//     gives up on it (its connection or stream ends), at most ioTimeout;
//   - X-Test-Sleep: ms: the answer comes after that long;
//   - X-Test-Grpc: 1: failures are trailers-only gRPC answers (200, with
//     grpc-status X-Test-Status in the head), success has grpc-status 0;
//     X-Test-Grpc: trailer: failures carry their grpc-status in trailers.
//
// The last answer is 200 with the request's headers as JSON.
type scriptedUpstream struct {
	mu    sync.Mutex
	tries map[string]int
}

func newScriptedUpstream() *scriptedUpstream { return &scriptedUpstream{tries: map[string]int{}} }

// count returns the tries of key so far.
func (s *scriptedUpstream) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[key]
}

func (s *scriptedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tries[r.Header.Get("X-Test-Key")]++
	try := s.tries[r.Header.Get("X-Test-Key")]
	s.mu.Unlock()
	if r.Header.Get("X-Test-Hang-First") == "1" && try == 1 {
		select {
		case <-r.Context().Done():
		case <-time.After(ioTimeout):
		}
		return
	}
	if ms, err := strconv.Atoi(r.Header.Get("X-Test-Sleep")); err == nil {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Duration(ms) * time.Millisecond):
		}
	}
	grpc := r.Header.Get("X-Test-Grpc")
	if n, _ := strconv.Atoi(r.Header.Get("X-Test-Fail")); try <= n {
		st := r.Header.Get("X-Test-Status")
		switch grpc {
		case "1":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", st)
			w.WriteHeader(200)
		case "trailer":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.WriteHeader(200)
			w.Write([]byte("\x00\x00\x00\x00\x00"))
			w.Header().Set("Grpc-Status", st)
		default:
			code, _ := strconv.Atoi(st)
			w.WriteHeader(code)
		}
		return
	}
	if grpc != "" {
		w.Header().Set("Grpc-Status", "0")
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(r.Header)
}

// keyOf names a subtest's requests for scriptedUpstream.
func keyOf(t *testing.T) string { return t.Name() }

// getWith does a GET of url with the headers kv (name, value pairs) and
// returns the response, its body and how long it took.
func getWith(t *testing.T, c *http.Client, url string, kv ...string) (*http.Response, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, body := get(t, c, url, kv...)
	return resp, body, time.Since(start)
}

// noneSeen fails the test if the upstream saw any of names.
func noneSeen(t *testing.T, seen http.Header, names ...string) {
	t.Helper()
	for _, n := range names {
		if v := seen.Values(n); len(v) > 0 {
			t.Errorf("upstream saw %s: %q; the router consumes it", n, v)
		}
	}
}

// TestOverrideTimeoutHeaders: x-envoy-upstream-rq-timeout-ms replaces the
// route timeout (0 disables it) and is what x-envoy-expected-rq-timeout-ms
// announces; x-envoy-upstream-rq-timeout-alt-response makes the timeout a
// 204. An external client's are stripped and change nothing.
func TestOverrideTimeoutHeaders(t *testing.T) {
	up := newScriptedUpstream()
	srv := testutil.Upstream(t, up)
	routes := route(`prefix = "/short"`, "up", `timeout = "200ms"`) + route(`prefix = "/"`, "up", `timeout = "5s"`)
	cfg := config(1, routes, cluster("up", srv.Addr))
	internal := gwtest.Start(t, cfg)
	external := gwtest.Start(t, withHCM(cfg, externalHCM))
	for _, ck := range clientKinds {
		t.Run(ck.name, func(t *testing.T) {
			c := ck.new()
			in, ex := "http://"+internal.Addr("http"), "http://"+external.Addr("http")

			t.Run("internal: header timeout cuts a hanging upstream", func(t *testing.T) {
				resp, body, took := getWith(t, c, in+"/hang", "X-Test-Key", keyOf(t), "X-Test-Hang-First", "1",
					"X-Envoy-Upstream-Rq-Timeout-Ms", "100")
				if resp.StatusCode != 504 || took > 4*time.Second {
					t.Fatalf("got %d %q after %v, want 504 after about 100ms (route timeout 5s)", resp.StatusCode, body, took)
				}
			})
			t.Run("internal: header timeout announced, not forwarded", func(t *testing.T) {
				resp, body := get(t, c, in+"/echo", "X-Test-Key", keyOf(t), "X-Envoy-Upstream-Rq-Timeout-Ms", "1234")
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %q", resp.StatusCode, body)
				}
				seen := decodeHeaders(t, body)
				if got := seen.Get("X-Envoy-Expected-Rq-Timeout-Ms"); got != "1234" {
					t.Errorf("upstream saw x-envoy-expected-rq-timeout-ms %q, want 1234", got)
				}
				noneSeen(t, seen, "X-Envoy-Upstream-Rq-Timeout-Ms")
			})
			t.Run("internal: 0 disables the route timeout", func(t *testing.T) {
				resp, body := get(t, c, in+"/short", "X-Test-Key", keyOf(t)+"/0", "X-Test-Sleep", "600",
					"X-Envoy-Upstream-Rq-Timeout-Ms", "0")
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %q, want 200 (no timeout)", resp.StatusCode, body)
				}
				noneSeen(t, decodeHeaders(t, body), "X-Envoy-Expected-Rq-Timeout-Ms", "X-Envoy-Upstream-Rq-Timeout-Ms")
				// The same request without the header times out.
				if resp, body := get(t, c, in+"/short", "X-Test-Key", keyOf(t), "X-Test-Sleep", "600"); resp.StatusCode != 504 {
					t.Fatalf("without the header: %d %q, want 504 (route timeout 200ms)", resp.StatusCode, body)
				}
			})
			t.Run("internal: malformed value ignored", func(t *testing.T) {
				resp, body := get(t, c, in+"/echo", "X-Test-Key", keyOf(t), "X-Envoy-Upstream-Rq-Timeout-Ms", "-5")
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %q", resp.StatusCode, body)
				}
				seen := decodeHeaders(t, body)
				if got := seen.Get("X-Envoy-Expected-Rq-Timeout-Ms"); got != "5000" {
					t.Errorf("upstream saw x-envoy-expected-rq-timeout-ms %q, want the route's 5000", got)
				}
				noneSeen(t, seen, "X-Envoy-Upstream-Rq-Timeout-Ms")
			})
			t.Run("internal: alt response is 204", func(t *testing.T) {
				resp, body := get(t, c, in+"/short", "X-Test-Key", keyOf(t), "X-Test-Hang-First", "1",
					"X-Envoy-Upstream-Rq-Timeout-Alt-Response", "true")
				if resp.StatusCode != 204 || len(body) != 0 {
					t.Fatalf("got %d %q, want an empty 204 on the route timeout", resp.StatusCode, body)
				}
			})
			t.Run("external: stripped and ignored", func(t *testing.T) {
				resp, body := get(t, c, ex+"/echo", "X-Test-Key", keyOf(t), "X-Envoy-Upstream-Rq-Timeout-Ms", "1234",
					"X-Envoy-Upstream-Rq-Timeout-Alt-Response", "1")
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %q", resp.StatusCode, body)
				}
				seen := decodeHeaders(t, body)
				if got := seen.Get("X-Envoy-Expected-Rq-Timeout-Ms"); got != "5000" {
					t.Errorf("upstream saw x-envoy-expected-rq-timeout-ms %q, want the route's 5000", got)
				}
				noneSeen(t, seen, "X-Envoy-Upstream-Rq-Timeout-Ms", "X-Envoy-Upstream-Rq-Timeout-Alt-Response")
				if resp, body := get(t, c, ex+"/short", "X-Test-Key", keyOf(t)+"/0", "X-Test-Sleep", "600",
					"X-Envoy-Upstream-Rq-Timeout-Ms", "0"); resp.StatusCode != 504 {
					t.Errorf("timeout 0 from an external client: %d %q, want 504 (route timeout 200ms)", resp.StatusCode, body)
				}
				if resp, body := get(t, c, ex+"/short", "X-Test-Key", keyOf(t)+"/alt", "X-Test-Hang-First", "1",
					"X-Envoy-Upstream-Rq-Timeout-Alt-Response", "true"); resp.StatusCode != 504 {
					t.Errorf("alt response from an external client: %d %q, want 504", resp.StatusCode, body)
				}
			})
		})
	}
}

// TestOverrideRetryHeaders: x-envoy-retry-on asks for retries on a route
// without a policy (one by default), merged with a route's policy;
// x-envoy-max-retries sets their number, x-envoy-retriable-status-codes
// adds codes, x-envoy-upstream-rq-per-try-timeout-ms bounds each try. An
// external client's change nothing.
func TestOverrideRetryHeaders(t *testing.T) {
	up := newScriptedUpstream()
	srv := testutil.Upstream(t, up)
	backoff := `retry_back_off = { base_interval = "1ms" }`
	routes := route(`prefix = "/codes"`, "up", `retry_policy = { retry_on = ["retriable-status-codes"], `+backoff+` }`) +
		route(`prefix = "/policy"`, "up", `retry_policy = { retry_on = ["5xx"], num_retries = 1, `+backoff+` }`) +
		route(`prefix = "/pertry"`, "up", `timeout = "1500ms"`) +
		route(`prefix = "/"`, "up")
	cfg := config(1, routes, cluster("up", srv.Addr))
	internal := gwtest.Start(t, cfg)
	external := gwtest.Start(t, withHCM(cfg, externalHCM))
	for _, ck := range clientKinds {
		t.Run(ck.name, func(t *testing.T) {
			c := ck.new()
			in, ex := "http://"+internal.Addr("http"), "http://"+external.Addr("http")
			for _, tc := range []struct {
				name, base, path string
				hdrs             []string
				wantStatus       int
				wantTries        int
			}{
				{"internal: retry-on without policy retries once", in, "/", []string{"X-Test-Fail", "1", "X-Test-Status", "503",
					"X-Envoy-Retry-On", "5xx"}, 200, 2},
				{"internal: one retry by default", in, "/", []string{"X-Test-Fail", "2", "X-Test-Status", "503",
					"X-Envoy-Retry-On", "5xx"}, 503, 2},
				{"internal: max-retries", in, "/", []string{"X-Test-Fail", "2", "X-Test-Status", "503",
					"X-Envoy-Retry-On", "bogus, 5xx", "X-Envoy-Max-Retries", "2"}, 200, 3},
				{"internal: max-retries over the route's", in, "/policy", []string{"X-Test-Fail", "2", "X-Test-Status", "503",
					"X-Envoy-Max-Retries", "2"}, 200, 3},
				{"internal: max-retries malformed", in, "/policy", []string{"X-Test-Fail", "2", "X-Test-Status", "503",
					"X-Envoy-Max-Retries", "two"}, 503, 2},
				{"internal: merged with the route's conditions", in, "/codes", []string{"X-Test-Fail", "1", "X-Test-Status", "503",
					"X-Envoy-Retry-On", "gateway-error"}, 200, 2},
				{"internal: gRPC names not in x-envoy-retry-on", in, "/", []string{"X-Test-Fail", "1", "X-Test-Status", "503",
					"X-Envoy-Retry-On", "unavailable"}, 503, 1},
				{"internal: retriable status codes added", in, "/codes", []string{"X-Test-Fail", "1", "X-Test-Status", "418",
					"X-Envoy-Retriable-Status-Codes", "500,418"}, 200, 2},
				{"internal: status code not listed", in, "/codes", []string{"X-Test-Fail", "1", "X-Test-Status", "418"}, 418, 1},
				{"internal: per-try timeout", in, "/pertry", []string{"X-Test-Hang-First", "1",
					"X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms", "100", "X-Envoy-Retry-On", "5xx"}, 200, 2},
				{"external: retry-on ignored", ex, "/", []string{"X-Test-Fail", "1", "X-Test-Status", "503",
					"X-Envoy-Retry-On", "5xx"}, 503, 1},
				{"external: max-retries ignored", ex, "/policy", []string{"X-Test-Fail", "2", "X-Test-Status", "503",
					"X-Envoy-Max-Retries", "2"}, 503, 2},
				{"external: retriable status codes ignored", ex, "/codes", []string{"X-Test-Fail", "1", "X-Test-Status", "418",
					"X-Envoy-Retriable-Status-Codes", "418"}, 418, 1},
				{"external: per-try timeout ignored", ex, "/pertry", []string{"X-Test-Hang-First", "1",
					"X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms", "100", "X-Envoy-Retry-On", "5xx"}, 504, 1},
			} {
				t.Run(tc.name, func(t *testing.T) {
					key := keyOf(t)
					resp, body := get(t, c, tc.base+tc.path, append([]string{"X-Test-Key", key}, tc.hdrs...)...)
					if resp.StatusCode != tc.wantStatus {
						t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tc.wantStatus)
					}
					if got := up.count(key); got != tc.wantTries {
						t.Fatalf("upstream saw %d tries, want %d", got, tc.wantTries)
					}
					if resp.StatusCode == 200 {
						noneSeen(t, decodeHeaders(t, body), "X-Envoy-Retry-On", "X-Envoy-Max-Retries",
							"X-Envoy-Retriable-Status-Codes", "X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms")
					}
				})
			}
		})
	}
}

// TestGrpcRetryOnTrailersOnlyStatus: retry_on's gRPC conditions (and an
// internal client's x-envoy-retry-grpc-on) retry a trailers-only answer
// whose head carries a matching grpc-status, over HTTP/2 downstream, to
// HTTP/1 and HTTP/2 upstreams; a grpc-status in trailers is not looked at,
// as in Envoy.
func TestGrpcRetryOnTrailersOnlyStatus(t *testing.T) {
	up := newScriptedUpstream()
	for _, proto := range []string{"http1", "http2"} {
		t.Run(proto, func(t *testing.T) {
			var addr string
			if proto == "http2" {
				addr, _ = h2Upstream(t, up, false)
			} else {
				addr = testutil.Upstream(t, up).Addr
			}
			backoff := `retry_back_off = { base_interval = "1ms" }`
			routes := route(`prefix = "/cfg"`, "up", `retry_policy = { retry_on = ["unavailable", "cancelled"], `+backoff+` }`) +
				route(`prefix = "/"`, "up")
			cfg := config(1, routes, cluster("up", addr)+fmt.Sprintf("protocol = %q\n", proto))
			internal := gwtest.Start(t, cfg)
			external := gwtest.Start(t, withHCM(cfg, externalHCM))
			c := h2cClient(nil)
			in, ex := "http://"+internal.Addr("http"), "http://"+external.Addr("http")
			grpcHdrs := func(status string, kv ...string) []string {
				return append([]string{"Content-Type", "application/grpc", "Te", "trailers", "X-Test-Fail", "1",
					"X-Test-Grpc", "1", "X-Test-Status", status}, kv...)
			}
			for _, tc := range []struct {
				name, url  string
				hdrs       []string
				wantStatus string // the answer's grpc-status
				wantTries  int
			}{
				{"retry_on unavailable", in + "/cfg", grpcHdrs("14"), "0", 2},
				{"retry_on cancelled", in + "/cfg", grpcHdrs("1"), "0", 2},
				{"status not listed", in + "/cfg", grpcHdrs("13"), "13", 1},
				{"status in trailers not looked at", in + "/cfg", append(grpcHdrs("14"), "X-Test-Grpc", "trailer"), "14", 1},
				{"internal: x-envoy-retry-grpc-on", in + "/", grpcHdrs("14", "X-Envoy-Retry-Grpc-On", "unavailable"), "0", 2},
				{"internal: HTTP names not in x-envoy-retry-grpc-on", in + "/", grpcHdrs("14", "X-Envoy-Retry-Grpc-On", "5xx"), "14", 1},
				{"external: x-envoy-retry-grpc-on ignored", ex + "/", grpcHdrs("14", "X-Envoy-Retry-Grpc-On", "unavailable"), "14", 1},
				{"external: route's conditions hold", ex + "/cfg", grpcHdrs("14"), "0", 2},
			} {
				t.Run(tc.name, func(t *testing.T) {
					key := keyOf(t)
					// get sets each header: a later pair replaces an earlier one.
					resp, body := get(t, c, tc.url, append([]string{"X-Test-Key", key}, tc.hdrs...)...)
					st := resp.Header.Get("Grpc-Status")
					if st == "" {
						st = resp.Trailer.Get("Grpc-Status")
					}
					if resp.StatusCode != 200 || st != tc.wantStatus {
						t.Fatalf("got %d grpc-status %q (%q), want 200 grpc-status %s", resp.StatusCode, st, body, tc.wantStatus)
					}
					if got := up.count(key); got != tc.wantTries {
						t.Fatalf("upstream saw %d tries, want %d", got, tc.wantTries)
					}
					if st == "0" {
						noneSeen(t, decodeHeaders(t, body), "X-Envoy-Retry-Grpc-On")
					}
				})
			}
		})
	}
}

// TestGrpcTimeoutHeader: on a route with
// max_stream_duration.grpc_timeout_header_max, a gRPC request's
// grpc-timeout is its route timeout, capped by the maximum, and goes
// upstream reduced (with x-envoy-expected-rq-timeout-ms); other requests
// and routes keep the route timeout and the header as sent.
func TestGrpcTimeoutHeader(t *testing.T) {
	up := newScriptedUpstream()
	srv := testutil.Upstream(t, up)
	routes := route(`prefix = "/g"`, "up", `timeout = "10s"`, `max_stream_duration = { grpc_timeout_header_max = "500ms" }`) +
		route(`prefix = "/"`, "up", `timeout = "10s"`)
	p := gwtest.Start(t, config(1, routes, cluster("up", srv.Addr)))
	base := "http://" + p.Addr("http")
	for _, ck := range clientKinds {
		t.Run(ck.name, func(t *testing.T) {
			c := ck.new()
			for _, tc := range []struct {
				name, path, ct, timeout string
				wantTimeout, wantExp    string
			}{
				{"under the max", "/g", "application/grpc", "100m", "100m", "100"},
				{"capped", "/g", "application/grpc+proto", "5S", "500m", "500"},
				{"absent: the max", "/g", "application/grpc", "", "500m", "500"},
				{"malformed: the max", "/g", "application/grpc", "1x", "500m", "500"},
				{"not gRPC", "/g", "application/json", "5S", "5S", "10000"},
				{"route without the key", "/", "application/grpc", "5S", "5S", "10000"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					hdrs := []string{"X-Test-Key", keyOf(t), "Content-Type", tc.ct}
					if tc.timeout != "" {
						hdrs = append(hdrs, "Grpc-Timeout", tc.timeout)
					}
					resp, body := get(t, c, base+tc.path, hdrs...)
					if resp.StatusCode != 200 {
						t.Fatalf("got %d %q", resp.StatusCode, body)
					}
					seen := decodeHeaders(t, body)
					if got := seen.Get("Grpc-Timeout"); got != tc.wantTimeout {
						t.Errorf("upstream saw grpc-timeout %q, want %q", got, tc.wantTimeout)
					}
					if got := seen.Get("X-Envoy-Expected-Rq-Timeout-Ms"); got != tc.wantExp {
						t.Errorf("upstream saw x-envoy-expected-rq-timeout-ms %q, want %q", got, tc.wantExp)
					}
				})
			}
			t.Run("the capped grpc-timeout is the route timeout", func(t *testing.T) {
				resp, body, took := getWith(t, c, base+"/g", "X-Test-Key", keyOf(t), "X-Test-Hang-First", "1",
					"Content-Type", "application/grpc", "Grpc-Timeout", "20S")
				// The route timeout's 504 reaches a gRPC client as a
				// trailers-only UNAVAILABLE (14), as Envoy maps it.
				st := resp.Header.Get("Grpc-Status")
				if resp.StatusCode != 200 || st != "14" || took > 5*time.Second {
					t.Fatalf("got %d grpc-status %q %q after %v, want 200 grpc-status 14 after about 500ms (route timeout 10s)", resp.StatusCode, st, body, took)
				}
			})
		})
	}
}
