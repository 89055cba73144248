package supervisor_test

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// silentHost accepts connections, reads the request heads and never
// answers; hits counts the requests it got.
type silentHost struct {
	addr string
	hits atomic.Int64
}

func newSilentHost(t *testing.T) *silentHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &silentHost{addr: ln.Addr().String()}
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
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					h.hits.Add(1)
				}
			}()
		}
	}()
	return h
}

func TestPerTryIdleTimeoutFailsASilentTryAndRetries(t *testing.T) {
	t.Parallel()
	good, silent := newFakeHost(t), newSilentHost(t)
	s := start(t, resilienceConfig(controlPath(t), []string{good.addr, silent.addr}, "",
		`    retry_policy = { retry_on = ["5xx"], num_retries = 1, per_try_idle_timeout = "100ms", retry_host_predicate = ["previous_hosts"] }
`))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	// Round robin sends some first tries to the silent host: each must end
	// by its idle timeout and be retried on the good host (the route
	// timeout, 15s, is far beyond the test's client timeout).
	for i := 0; silent.hits.Load() < 2; i++ {
		if i == 40 {
			t.Fatalf("the silent host got %d of 40 requests", silent.hits.Load())
		}
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+good.addr {
			t.Fatalf("GET / = %d %q, want 200 from %s", code, body, good.addr)
		}
	}
	hits := silent.hits.Load()
	c := counters(t, admin)
	// As in Envoy, a try ended by per_try_idle_timeout counts in
	// upstream_rq_per_try_idle_timeout, not in upstream_rq_per_try_timeout.
	if c["cluster.backend.upstream_rq_per_try_idle_timeout"] != float64(hits) || c["cluster.backend.upstream_rq_retry"] != float64(hits) {
		t.Errorf("upstream_rq_per_try_idle_timeout %v, upstream_rq_retry %v; want %d each", c["cluster.backend.upstream_rq_per_try_idle_timeout"],
			c["cluster.backend.upstream_rq_retry"], hits)
	}
	if n := c["cluster.backend.upstream_rq_per_try_timeout"]; n != 0 {
		t.Errorf("upstream_rq_per_try_timeout %v, want 0 (no per_try_timeout is set)", n)
	}
}
