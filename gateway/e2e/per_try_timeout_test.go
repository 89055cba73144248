package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestPerTryTimeoutEndsWithTheResponseHead checks that per_try_timeout
// bounds a try's wait for the response head only: as in Envoy (which
// ignores a per-try timeout once the response has started downstream), a
// body that takes longer than per_try_timeout to arrive is passed on
// whole, within the route timeout, from HTTP/1.1 and HTTP/2 upstreams.
func TestPerTryTimeoutEndsWithTheResponseHead(t *testing.T) {
	const perTry = 300 * time.Millisecond
	slowBody := func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.WriteHeader(200)
		io.WriteString(w, "first,")
		w.(http.Flusher).Flush()
		// The rest of the body comes after twice the per-try timeout.
		select {
		case <-time.After(2 * perTry):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second")
	}
	h1 := testutil.Upstream(t, http.HandlerFunc(slowBody))
	h2, _ := h2Upstream(t, http.HandlerFunc(slowBody), false)
	retry := `retry_policy = { retry_on = ["5xx"], num_retries = 1, per_try_timeout = "300ms" }`
	routes := route(`prefix = "/h1"`, "h1", `timeout = "10s"`, retry) +
		route(`prefix = "/h2"`, "h2", `timeout = "10s"`, retry)
	p := gwtest.Start(t, config(1, routes, cluster("h1", h1.Addr), h2Cluster("h2", h2)))
	for _, path := range []string{"/h1", "/h2"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			resp, err := newClient(nil).Get("http://" + p.Addr("http") + path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || string(body) != "first,second" {
				t.Fatalf("GET %s, body slower than per_try_timeout: %d %q, err %v; want 200 %q",
					path, resp.StatusCode, body, err, "first,second")
			}
		})
	}
}
