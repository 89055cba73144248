package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestIdleConnectionIsTakenWithoutAPendingUnit checks Envoy's rule that a
// request is pending only while it waits for a connection: with
// max_pending_requests = 1 held by a request waiting under
// max_connections for host x, a request for host y, whose pool has an
// idle connection, is served at once instead of overflowing (503 UO).
func TestIdleConnectionIsTakenWithoutAPendingUnit(t *testing.T) {
	release := make(chan struct{})
	x := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(2 * ioTimeout):
			}
		}
		io.WriteString(w, "x")
	}))
	y := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "y") }))
	cfg := config(1, route(`prefix = "/"`, "odst", `timeout = "20s"`),
		"\n[[cluster]]\nname = \"odst\"\ntype = \"original_dst\"\nuse_http_header = true\nconnect_timeout = \"1s\"\n"+
			"[cluster.circuit_breakers]\nmax_connections = 1\nmax_pending_requests = 1\n") + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")
	send := func(path, host string) chan string {
		out := make(chan string, 1)
		go func() {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("x-envoy-original-dst-host", host)
			resp, err := newClient(nil).Do(req) // a downstream connection each
			if err != nil {
				out <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out <- resp.Status + " " + string(b)
		}()
		return out
	}
	wait := func(what string, ch chan string, want string) {
		t.Helper()
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("%s: %q, want %q (%v)", what, got, want, adminCounters(t, admin))
			}
		case <-time.After(2 * ioTimeout):
			t.Fatalf("%s: no answer", what)
		}
	}
	// y gets a connection (its pool's first may always open) and keeps it
	// idle.
	wait("first GET to y", send("/", y.Addr), "200 OK y")
	// x's first connection, busy with a slow request; a second request
	// for x waits for it, pending, holding the one pending unit.
	slow := send("/slow", x.Addr)
	waitCounter(t, admin, "cluster.odst.upstream_rq_active", 1)
	queued := send("/", x.Addr)
	waitCounter(t, admin, "cluster.odst.upstream_rq_pending_active", 1)
	// y's idle connection needs no pending unit.
	wait("GET to y while x's request is pending", send("/", y.Addr), "200 OK y")
	close(release)
	wait("slow GET to x", slow, "200 OK x")
	wait("queued GET to x", queued, "200 OK x")
	if n := adminCounters(t, admin)["cluster.odst.upstream_rq_pending_overflow"]; n != 0 {
		t.Errorf("upstream_rq_pending_overflow = %v, want 0", n)
	}
}
