package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestRouterFailureRepliesCountInClusterResponseCodes checks that sluice's
// own answer to a request it got no upstream response for is counted in
// the cluster's upstream_rq_<N>xx, as Envoy's router charges it
// (sendNoHealthyUpstreamResponse, chargeUpstreamAbort): no healthy host
// (503 UH), max_requests and max_pending_requests overflow (503 UO),
// connect failure (503 UF), a reset before the response (503 UC), a
// malformed response (502 UPE), the route timeout (504 UT) and the last
// per_try_timeout (504 UT, the retried try not counted), from HTTP/1.1
// and HTTP/2 upstreams. None of them is
// a sample of upstream_rq_time, which times upstream responses only, and
// only the route timeout counts in upstream_rq_timeout.
func TestRouterFailureRepliesCountInClusterResponseCodes(t *testing.T) {
	silent := testutil.RawUpstream(t, func(c net.Conn) {
		if _, err := testutil.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.Copy(io.Discard, c) // no answer; returns when sluice gives up
	})
	reset := testutil.RawUpstream(t, func(c net.Conn) {
		if _, err := testutil.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		testutil.Reset(c)
	})
	garbage := testutil.RawUpstream(t, func(c net.Conn) {
		if _, err := testutil.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 abc Broken\r\n\r\n")
	})
	// The same failures from HTTP/2 upstreams: a stream reset before the
	// response head, and no answer within the route timeout.
	h2reset, _ := h2Upstream(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler) // RST_STREAM, no response
	}), false)
	h2silent, _ := h2Upstream(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(ioTimeout):
		}
	}), false)
	routes := route(`prefix = "/h2uc"`, "h2uc") +
		route(`prefix = "/h2ut"`, "h2ut", `timeout = "300ms"`) +
		route(`prefix = "/uh"`, "uh") +
		route(`prefix = "/rq"`, "rq") +
		route(`prefix = "/pending"`, "pending") +
		route(`prefix = "/uf"`, "uf") +
		route(`prefix = "/uc"`, "uc") +
		route(`prefix = "/upe"`, "upe") +
		route(`prefix = "/ut"`, "ut", `timeout = "300ms"`) +
		route(`prefix = "/pt"`, "pt", `timeout = "10s"`,
			`retry_policy = { retry_on = ["5xx"], num_retries = 1, per_try_timeout = "200ms", retry_back_off = { base_interval = "1ms" } }`)
	cfg := config(1, routes,
		"\n[[cluster]]\nname = \"uh\"\ntype = \"original_dst\"\nuse_http_header = true\nconnect_timeout = \"1s\"\n",
		cluster("rq", silent.Addr)+"[cluster.circuit_breakers]\nmax_requests = 0\n",
		cluster("pending", silent.Addr)+"[cluster.circuit_breakers]\nmax_pending_requests = 0\n",
		cluster("uf", testutil.DeadAddr(t)),
		cluster("uc", reset.Addr),
		cluster("upe", garbage.Addr),
		cluster("ut", silent.Addr),
		cluster("pt", silent.Addr),
		h2Cluster("h2uc", h2reset),
		h2Cluster("h2ut", h2silent)) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	c := newClient(nil)
	for _, tc := range []struct {
		cluster, flag string
		status        int
	}{
		{"uh", "UH", 503}, {"rq", "UO", 503}, {"pending", "UO", 503}, {"uf", "UF", 503},
		{"uc", "UC", 503}, {"upe", "UPE", 502}, {"ut", "UT", 504}, {"pt", "UT", 504},
		{"h2uc", "UC", 503}, {"h2ut", "UT", 504},
	} {
		resp, body := get(t, c, "http://"+p.Addr("http")+"/"+tc.cluster)
		if resp.StatusCode != tc.status || !hasFlag(resp, body, tc.flag) {
			t.Errorf("/%s: %d %q, want %d naming flag %s", tc.cluster, resp.StatusCode, body, tc.status, tc.flag)
		}
		class := "cluster." + tc.cluster + ".upstream_rq_" + string(rune('0'+tc.status/100)) + "xx"
		waitCounter(t, admin, class, 1)
		if n := histogramCount(t, admin, "cluster."+tc.cluster+".upstream_rq_time"); n != 0 {
			t.Errorf("cluster.%s.upstream_rq_time has %d samples, want none (no upstream response)", tc.cluster, n)
		}
	}
	st := adminCounters(t, admin)
	// As in Envoy, upstream_rq_timeout counts the route timeout; a
	// per-try timeout only upstream_rq_per_try_timeout.
	for name, want := range map[string]float64{
		"pt.upstream_rq_total": 2, "pt.upstream_rq_per_try_timeout": 2, "pt.upstream_rq_timeout": 0,
		"ut.upstream_rq_timeout": 1,
	} {
		if got := st["cluster."+name]; got != want {
			t.Errorf("cluster.%s = %v, want %v", name, got, want)
		}
	}
}
