package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestStaleReuseRedialOverMaxConnectionsWaitsPending sends a request on a
// pooled keep-alive connection the upstream closes when the request
// arrives (the stale reuse of a keep-alive race), whose one re-send needs a new connection while
// the cluster's max_connections breaker is full: another pool of the same
// breaker (an original_dst cluster's second host, whose first connection
// a pool may always open) holds the unit the closed connection gave back,
// and the first pool still holds its other connection. As in Envoy, a
// request that needs a connection the breaker refuses is an overflow
// (upstream_cx_overflow) and waits for one, pending
// (upstream_rq_pending_total), here until its route timeout: 504 UT, not a
// reset (503 UC).
func TestStaleReuseRedialOverMaxConnectionsWaitsPending(t *testing.T) {
	staleRedial(t, "max_connections = 2\n", 504, "UT",
		map[string]float64{"upstream_rq_pending_overflow": 0, "upstream_rq_pending_total": 1, "upstream_rq_timeout": 1,
			"upstream_rq_5xx": 1, "upstream_cx_total": 3})
}

func staleRedial(t *testing.T, breakers string, status int, flag string, counters map[string]float64) {
	// Upstream a answers its first two requests once both have arrived
	// (so that sluice opens two connections to it); a second request on
	// either connection is read and the connection closed unanswered, so
	// the reuse turns out stale only once the request is sent: no check
	// of the idle connection before the send can see it coming.
	var arrived atomic.Int64
	both := make(chan struct{})
	var once sync.Once
	a := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := testutil.ReadRequest(br); err != nil {
			return
		}
		if arrived.Add(1) >= 2 {
			once.Do(func() { close(both) })
		}
		select {
		case <-both:
		case <-time.After(ioTimeout):
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
		testutil.ReadRequest(br)
	})
	b := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := testutil.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
		}
	})
	cfg := config(1, route(`prefix = "/"`, "odst", `timeout = "1s"`),
		"\n[[cluster]]\nname = \"odst\"\ntype = \"original_dst\"\nuse_http_header = true\nconnect_timeout = \"1s\"\n"+
			"[cluster.circuit_breakers]\n"+breakers) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	url := "http://" + p.Addr("http") + "/"
	c := newClient(nil)
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("x-envoy-original-dst-host", a.Addr)
			resp, err := newClient(nil).Do(req) // a connection each
			if err != nil {
				res <- result{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			res <- result{code: resp.StatusCode}
		}()
	}
	for range 2 {
		select {
		case r := <-res:
			if r.err != nil || r.code != 200 {
				t.Fatalf("concurrent GET to a: %d, %v; want 200 (%v)", r.code, r.err, adminCounters(t, admin))
			}
		case <-time.After(2 * ioTimeout):
			t.Fatal("concurrent GET to a: no answer")
		}
	}
	// b's pool has no connection: it may open one over the limit (2 of 2
	// are a's, both idle now).
	if resp, body := get(t, c, url, "x-envoy-original-dst-host", b.Addr); resp.StatusCode != 200 || string(body) != "b" {
		t.Fatalf("GET to b: %d %q, want 200 b", resp.StatusCode, body)
	}
	// Reuses one of a's connections, which a closes on the request: the
	// re-send needs a new connection.
	resp, body := get(t, c, url, "x-envoy-original-dst-host", a.Addr)
	if resp.StatusCode != status || !hasFlag(resp, body, flag) {
		t.Fatalf("GET to a on a stale connection, re-dial refused: %d %q; want %d naming flag %s", resp.StatusCode, body, status, flag)
	}
	if n := a.ConnCount(); n != 2 {
		t.Errorf("a accepted %d connections, want 2 (the re-send never connected)", n)
	}
	st := adminCounters(t, admin)
	if got := st["cluster.odst.upstream_cx_overflow"]; got != 2 {
		t.Errorf("upstream_cx_overflow = %v, want 2 (b's first connection, a's re-dial)", got)
	}
	for name, want := range counters {
		if got := st["cluster.odst."+name]; got != want {
			t.Errorf("cluster.odst.%s = %v, want %v", name, got, want)
		}
	}
	if strings.Contains(string(body), "UC") {
		t.Errorf("reply %q names UC", body)
	}
}
