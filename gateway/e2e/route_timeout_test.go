package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestRouteTimeoutStartsWhenTheRequestEnds checks that the route timeout
// counts from the end of the downstream request, as Envoy's does ("between
// the point at which the entire downstream request has been processed and
// when the upstream response has been completely processed"): a client
// that takes longer than the timeout to send its body still gets the
// upstream's answer, on routes with and without a retry policy and on
// HTTP/1.1 and HTTP/2 upstreams.
func TestRouteTimeoutStartsWhenTheRequestEnds(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h1 := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "h1 %s", body)
	}))
	h2 := newH2Host(t, "h2")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	h1Hang := testutil.Upstream(t, http.HandlerFunc(hang))
	h2Hang, _ := h2Upstream(t, http.HandlerFunc(hang), false)
	retry := `retry_policy = { retry_on = ["5xx"], num_retries = 1 }`
	timeoutKey := fmt.Sprintf(`timeout = "%s"`, timeout)
	routes := route(`prefix = "/h1-retry"`, "h1", timeoutKey, retry) +
		route(`prefix = "/h1"`, "h1", timeoutKey) +
		route(`prefix = "/h2-retry"`, "h2", timeoutKey, retry) +
		route(`prefix = "/h2"`, "h2", timeoutKey) +
		route(`prefix = "/hang1-retry"`, "hang1", timeoutKey, retry) +
		route(`prefix = "/hang2-retry"`, "hang2", timeoutKey, retry) +
		route(`prefix = "/hang2"`, "hang2", timeoutKey)
	p := gwtest.Start(t, config(1, routes, cluster("h1", h1.Addr), h2Cluster("h2", h2.addr),
		cluster("hang1", h1Hang.Addr), h2Cluster("hang2", h2Hang)))
	for _, tc := range []struct{ path, want string }{
		{"/h1-retry", "h1 abcd"},
		{"/h1", "h1 abcd"},
		{"/h2-retry", `h2 HTTP/2.0 POST "abcd"`},
		{"/h2", `h2 HTTP/2.0 POST "abcd"`},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			c := dial(t, p.Addr("http"))
			if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab", tc.path); err != nil {
				t.Fatal(err)
			}
			// A slow client: the rest of the body comes after twice the
			// route timeout.
			time.Sleep(2 * timeout)
			if _, err := io.WriteString(c, "cd"); err != nil {
				t.Fatal(err)
			}
			resp, body := readResponse(t, bufio.NewReader(c), "POST")
			if resp.StatusCode != 200 || string(body) != tc.want {
				t.Fatalf("POST %s with a body slower than the route timeout: %d %q, want 200 %q",
					tc.path, resp.StatusCode, body, tc.want)
			}
		})
	}
	// The timeout still bounds the wait for the answer once the request
	// is complete.
	for _, path := range []string{"/hang1-retry", "/hang2-retry", "/hang2"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			c := dial(t, p.Addr("http"))
			sent := time.Now()
			if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd", path); err != nil {
				t.Fatal(err)
			}
			resp, body := readResponse(t, bufio.NewReader(c), "POST")
			if resp.StatusCode != 504 || !strings.Contains(string(body), "UT") {
				t.Fatalf("POST %s to a silent upstream: %d %q, want 504 UT", path, resp.StatusCode, body)
			}
			if d := time.Since(sent); d < timeout {
				t.Fatalf("POST %s: 504 after %v, before the route timeout %v", path, d, timeout)
			}
		})
	}
}
