package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// staleUpstream answers the first request of its first connection with
// keep-alive, then reads the second request on that connection and closes
// it without a byte of response, as an upstream whose keep-alive timeout
// fires as the proxy reuses the connection. Later connections answer
// normally, naming the connection.
func staleUpstream(t *testing.T) *testutil.RawServer {
	var n atomic.Int64
	return testutil.RawUpstream(t, func(c net.Conn) {
		id := n.Add(1)
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			if _, err := testutil.ReadRequest(br); err != nil {
				return
			}
			if id == 1 && i == 1 {
				return // close before responding
			}
			body := fmt.Sprintf("conn %d", id)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
}

func TestReplayableRequestRetriedOnceWhenReusedConnectionCloses(t *testing.T) {
	up := staleUpstream(t)
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	c := newClient(nil)
	url := "http://" + p.Addr("http") + "/"
	if resp, body := get(t, c, url); resp.StatusCode != 200 || string(body) != "conn 1" {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	resp, body := get(t, c, url)
	if resp.StatusCode != 200 || string(body) != "conn 2" {
		t.Fatalf("second request (pooled connection closed under it): %d %q, want 200 from a fresh connection", resp.StatusCode, body)
	}
	if n := up.ConnCount(); n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2", n)
	}
}

func TestNonIdempotentRequestNotReplayedWhenReusedConnectionCloses(t *testing.T) {
	up := staleUpstream(t)
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	c := newClient(nil)
	url := "http://" + p.Addr("http") + "/"
	if resp, body := get(t, c, url); resp.StatusCode != 200 || string(body) != "conn 1" {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	req, err := http.NewRequest("POST", url, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, c, req)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "UC") {
		t.Fatalf("POST on a closing pooled connection: %d %q, want 503 with flag UC", resp.StatusCode, body)
	}
	if n := up.ConnCount(); n != 1 {
		t.Fatalf("upstream accepted %d connections, want 1 (a POST must not be replayed)", n)
	}
}

// TestRetriedResponseKeepsItsConnection: a 503 that is retried, and that
// arrived whole with keep-alive, leaves its connection in the pool; the
// retry and later requests reuse it.
func TestRetriedResponseKeepsItsConnection(t *testing.T) {
	var n atomic.Int64
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := testutil.ReadRequest(br); err != nil {
				return
			}
			if n.Add(1)%2 == 1 {
				io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up",
		`retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_back_off = { base_interval = "1ms" } }`),
		cluster("up", up.Addr)))
	c := newClient(nil)
	for i := range 5 {
		if resp, body := get(t, c, "http://"+p.Addr("http")+"/"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: %d %q, want 200 ok after one retry", i, resp.StatusCode, body)
		}
	}
	if got := n.Load(); got != 10 {
		t.Fatalf("upstream saw %d requests, want 10 (each retried once)", got)
	}
	if got := up.ConnCount(); got != 1 {
		t.Fatalf("upstream accepted %d connections, want 1 (a retried 503 keeps its connection)", got)
	}
}

// TestRetriedRequestCountsEachTry sends requests that are answered 503,
// retried and answered 200: the cluster counts each try in
// upstream_rq_total, as Envoy does, so that the per-class counts (one 5xx
// and one 2xx per request) add up to it, with one upstream_rq_retry each.
func TestRetriedRequestCountsEachTry(t *testing.T) {
	var n atomic.Int64
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := testutil.ReadRequest(br); err != nil {
				return
			}
			if n.Add(1)%2 == 1 {
				io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up",
		`retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_back_off = { base_interval = "1ms" } }`),
		cluster("up", up.Addr))+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	c := newClient(nil)
	const reqs = 3
	for i := range reqs {
		if resp, body := get(t, c, "http://"+p.Addr("http")+"/"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: %d %q, want 200 ok after one retry", i, resp.StatusCode, body)
		}
	}
	waitCounter(t, admin, "cluster.up.upstream_rq_2xx", reqs)
	st := adminCounters(t, admin)
	for name, want := range map[string]float64{"upstream_rq_total": 2 * reqs, "upstream_rq_5xx": reqs, "upstream_rq_retry": reqs} {
		if got := st["cluster.up."+name]; got != want {
			t.Errorf("cluster.up.%s = %v, want %v", name, got, want)
		}
	}
}
