package supervisor_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// closedAddr returns a loopback address nothing listens on: connecting to
// it is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestConnectFailureIsRetriedUnderRetryOnReset checks that retry_on =
// ["reset"] alone retries a request whose connection to the host was
// refused on an HTTP/1.1 cluster, as Envoy does and as sluice's HTTP/2
// tries did already (a connect failure is a reset before the response;
// connect-failure only narrows the policy to it).
func TestConnectFailureIsRetriedUnderRetryOnReset(t *testing.T) {
	t.Parallel()
	good := newFakeHost(t)
	dead := closedAddr(t)
	s := start(t, resilienceConfig(controlPath(t), []string{good.addr, dead}, "",
		`    retry_policy = { retry_on = ["reset"], num_retries = 1, retry_host_predicate = ["previous_hosts"] }
`))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	// Round robin sends about half the requests to the dead host first;
	// each of those is retried on the good one.
	for i := range 12 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+good.addr {
			t.Fatalf("GET / #%d = %d %q, want 200 from %s (a refused connection retried)", i, code, body, good.addr)
		}
	}
	c := counters(t, admin)
	if c["cluster.backend.upstream_rq_retry"] == 0 || c["cluster.backend.upstream_rq_retry"] != c["cluster.backend.upstream_rq_retry_success"] {
		t.Errorf("upstream_rq_retry %v, upstream_rq_retry_success %v; want equal and > 0", c["cluster.backend.upstream_rq_retry"],
			c["cluster.backend.upstream_rq_retry_success"])
	}
	if c["cluster.backend.upstream_cx_connect_fail"] == 0 {
		t.Error("upstream_cx_connect_fail = 0: no request went to the dead host")
	}
}

// TestRateLimitedResponseIsNotRetried checks that a 503 carrying
// x-envoy-ratelimited (an upstream Envoy's or sluice's rate limiting)
// goes to the client without a retry, as in Envoy, while the same 503
// without it is retried.
func TestRateLimitedResponseIsNotRetried(t *testing.T) {
	t.Parallel()
	var limited, plain atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/limited" {
			limited.Add(1)
			w.Header().Set("x-envoy-ratelimited", "true")
		} else {
			plain.Add(1)
		}
		w.WriteHeader(503)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s := start(t, resilienceConfig(controlPath(t), []string{ln.Addr().String()}, "",
		`    retry_policy = { retry_on = ["5xx"], num_retries = 2 }
`))
	addr := s.listenAddr(t, "public")
	s.wait(t, "ready", nil, nil)
	if code, _ := get(t, addr, "/limited"); code != 503 {
		t.Fatalf("GET /limited = %d, want the upstream's 503", code)
	}
	if n := limited.Load(); n != 1 {
		t.Errorf("a rate-limited 503 reached the upstream %d times, want 1 (no retry)", n)
	}
	if code, _ := get(t, addr, "/plain"); code != 503 {
		t.Fatalf("GET /plain = %d, want the upstream's 503", code)
	}
	if n := plain.Load(); n != 3 {
		t.Errorf("a plain 503 reached the upstream %d times, want 3 (num_retries = 2)", n)
	}
}

// TestEveryTryCountsAsAnUpstreamRequest checks that upstream_rq_total and
// the host's rq_total count each try of a retried request, as Envoy's do
// (one per upstream stream), also when the retry goes to the same host,
// so that they add up with upstream_rq_<code>, which counts each try's
// response.
func TestEveryTryCountsAsAnUpstreamRequest(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.status.Store(503)
	s := start(t, resilienceConfig(controlPath(t), []string{h.addr}, "",
		`    retry_policy = { retry_on = ["5xx"], num_retries = 2 }
`))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	if code, _ := get(t, addr, "/"); code != 503 {
		t.Fatalf("GET / = %d, want the upstream's 503 after the retries", code)
	}
	if n := h.served.Load(); n != 3 {
		t.Fatalf("the host served %d tries, want 3 (num_retries = 2)", n)
	}
	c := counters(t, admin)
	if c["cluster.backend.upstream_rq_total"] != 3 || c["cluster.backend.upstream_rq_5xx"] != 3 || c["cluster.backend.upstream_rq_retry"] != 2 {
		t.Errorf("upstream_rq_total %v, upstream_rq_5xx %v, upstream_rq_retry %v; want 3, 3, 2", c["cluster.backend.upstream_rq_total"],
			c["cluster.backend.upstream_rq_5xx"], c["cluster.backend.upstream_rq_retry"])
	}
	_, body := adminDo(t, "GET", admin, "/clusters")
	if want := fmt.Sprintf("backend::%s::rq_total::3\n", h.addr); !strings.Contains(body, want) {
		t.Errorf("/clusters has no %q:\n%s", want, body)
	}
}

// TestPreviousHostsMovesHashedRetriesToAnotherHost checks that a retry
// with the previous_hosts predicate leaves the host a request's hash maps
// to on ring_hash and maglev clusters, as Envoy's hash-based balancers do
// for a retry's host selection attempts: every key the failing host owns
// is answered by the other one.
func TestPreviousHostsMovesHashedRetriesToAnotherHost(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			good, bad := newFakeHost(t), newFakeHost(t)
			bad.status.Store(503)
			s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, `lb_policy = "`+policy+`"
`, `    hash_policy = [{ header = "x-key" }]
    retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_host_predicate = ["previous_hosts"] }
`))
			addr := s.listenAddr(t, "public")
			s.wait(t, "ready", nil, nil)
			c := &http.Client{Timeout: recvTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
			for i := range 16 {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Header.Set("x-key", fmt.Sprintf("key-%d", i))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "from "+good.addr {
					t.Fatalf("key-%d: %d %q, want 200 from %s (the retry on the other host)", i, resp.StatusCode, body, good.addr)
				}
			}
			if bad.served.Load() == 0 {
				t.Fatal("no key mapped to the failing host: the test proves nothing")
			}
		})
	}
}
