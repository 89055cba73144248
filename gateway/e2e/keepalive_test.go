package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestKeepAliveReusesConnections checks persistent connections on both
// sides of sluice, HTTP/1.0 closes and pipelining.
func TestKeepAliveReusesConnections(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s", r.URL.Path)
	}))
	p := gwtest.Start(t, simpleConfig(2, up.Addr))
	base := "http://" + p.Addr("http")

	t.Run("50 sequential requests over one client connection", func(t *testing.T) {
		var dials atomic.Int64
		c := newClient(&dials)
		before := up.ConnCount()
		for i := range 50 {
			resp, body := get(t, c, fmt.Sprintf("%s/seq/%d", base, i))
			if want := fmt.Sprintf("path=/seq/%d", i); resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("request %d: status %d, body %q; want 200, %q", i, resp.StatusCode, body, want)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("client opened %d connections, want 1 (sluice closed a keep-alive connection)", n)
		}
		if n := up.ConnCount() - before; n < 1 || n > 3 {
			t.Errorf("upstream accepted %d connections for 50 sequential requests, want 1 to 3", n)
		}
	})

	t.Run("HTTP/1.0 without keep-alive is closed", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "GET /ten HTTP/1.0\r\nHost: e2e\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "path=/ten" {
			t.Fatalf("status %d, body %q; want 200, path=/ten", resp.StatusCode, body)
		}
		assertClosed(t, conn, br)
	})

	t.Run("pipelined requests answered in order", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "GET /first HTTP/1.1\r\nHost: e2e\r\n\r\nGET /second HTTP/1.1\r\nHost: e2e\r\n\r\n")
		br := bufio.NewReader(conn)
		for _, want := range []string{"path=/first", "path=/second"} {
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("status %d, body %q; want 200, %q", resp.StatusCode, body, want)
			}
		}
	})
}

// TestPipelinedRequestArrivingDuringExchangeIsServed sends a second request
// while the first is at the upstream, then lets the upstream answer. sluice
// writes the first response from inside the read that waits for the next
// request; that wait is not woken by bytes which arrived before it started,
// so with an idle_timeout shorter than the wait the second request must
// still be found and answered, not dropped with the connection.
func TestPipelinedRequestArrivingDuringExchangeIsServed(t *testing.T) {
	arrived := make(chan struct{}, 1)
	gate := make(chan struct{})
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			select {
			case <-gate:
			case <-time.After(ioTimeout):
			}
		}
		fmt.Fprintf(w, "path=%s", r.URL.Path)
	}))
	p := gwtest.Start(t, withHCM(simpleConfig(1, up.Addr), `idle_timeout = "50ms"`))
	for round := range 3 {
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "GET /slow HTTP/1.1\r\nHost: e2e\r\n\r\n")
		select {
		case <-arrived:
		case <-time.After(ioTimeout):
			t.Fatalf("round %d: /slow never reached the upstream", round)
		}
		fmt.Fprintf(conn, "GET /next HTTP/1.1\r\nHost: e2e\r\n\r\n")
		select {
		case gate <- struct{}{}:
		case <-time.After(ioTimeout):
			t.Fatalf("round %d: the upstream handler stopped waiting", round)
		}
		br := bufio.NewReader(conn)
		for _, want := range []string{"path=/slow", "path=/next"} {
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("round %d: status %d, body %q; want 200, %q", round, resp.StatusCode, body, want)
			}
		}
	}
}
