package supervisor_test

import (
	"net"
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
