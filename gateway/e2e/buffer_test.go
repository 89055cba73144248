package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// bufferFilter is the buffer filter's http_filter table with the given
// max_request_bytes.
func bufferFilter(max int) string {
	return fmt.Sprintf(`
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.buffer"
      [listener.filter_chain.filter.config.http_filter.config]
      max_request_bytes = %d`, max)
}

// seenRequest is what the upstream of the buffer tests saw of a request.
type seenRequest struct {
	path          string
	contentLength string
	chunked       bool
	body          int
}

// TestBufferFilterHoldsWholeBodiesAndRefusesLargeOnes runs Envoy's buffer
// filter (max_request_bytes 3 MiB, above the connection's 1 MiB buffer
// limit, which it raises): a chunked body reaches the upstream whole with
// a Content-Length, over HTTP/1.1 and HTTP/2; a body over the limit gets
// 413 and never reaches the upstream, whether its Content-Length says so
// or its chunks pass the limit; a route that disables the filter streams
// the body chunked as before.
func TestBufferFilterHoldsWholeBodiesAndRefusesLargeOnes(t *testing.T) {
	var mu sync.Mutex
	var seen []seenRequest
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, seenRequest{r.URL.Path, r.Header.Get("Content-Length"), len(r.TransferEncoding) > 0, int(n)})
		mu.Unlock()
		fmt.Fprintf(w, "got %d", n)
	}))
	last := func() (seenRequest, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return seenRequest{}, 0
		}
		return seen[len(seen)-1], len(seen)
	}
	const max = 3 << 20
	cfg := withHTTPFilter(config(1,
		route(`prefix = "/stream"`, "up", `disabled_filters = ["sluice.filters.http.buffer"]`)+route(`prefix = "/"`, "up"),
		cluster("up", up.Addr)), bufferFilter(max))
	p := gwtest.Start(t, cfg)
	base := "http://" + p.Addr("http")

	// A chunked body of 2 MiB, streamed by the client (no Content-Length).
	big := bytes.Repeat([]byte("b"), 2<<20)
	for _, tc := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
		req, _ := http.NewRequest("POST", base+"/upload", io.MultiReader(bytes.NewReader(big)))
		req.ContentLength = -1
		resp, body := do(t, tc.c, req)
		got, _ := last()
		if resp.StatusCode != 200 || string(body) != fmt.Sprintf("got %d", len(big)) {
			t.Fatalf("%s: 2 MiB chunked upload: %d %q", tc.name, resp.StatusCode, body)
		}
		if got.chunked || got.contentLength != fmt.Sprint(len(big)) || got.body != len(big) {
			t.Errorf("%s: the upstream saw %+v; want the whole body with content-length %d", tc.name, got, len(big))
		}
	}

	// Too large by its Content-Length, then by its chunks: 413, upstream
	// untouched.
	_, before := last()
	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "POST /declared HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", max+1)
	resp, body := readResponse(t, bufio.NewReader(c), "POST")
	if resp.StatusCode != 413 || !strings.Contains(string(body), "Payload Too Large") {
		t.Errorf("declared Content-Length over the limit: %d %q, want 413", resp.StatusCode, body)
	}
	tooBig := bytes.Repeat([]byte("x"), max+1)
	for _, tc := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
		req, _ := http.NewRequest("POST", base+"/chunks", bytes.NewReader(tooBig))
		req.ContentLength = -1
		resp, err := tc.c.Do(req)
		if err != nil {
			// The proxy may answer and close before the client wrote
			// everything; what matters is that nothing reached the
			// upstream.
			t.Logf("%s: oversize chunked upload: %v", tc.name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("%s: chunked body over the limit: %d, want 413", tc.name, resp.StatusCode)
		}
	}
	if got, after := last(); after != before {
		t.Errorf("an oversize request reached the upstream: %+v", got)
	}

	// A route that disables the filter streams the body.
	req, _ := http.NewRequest("POST", base+"/stream", bytes.NewReader([]byte("streamed")))
	req.ContentLength = -1
	if resp, body := do(t, newClient(nil), req); resp.StatusCode != 200 || string(body) != "got 8" {
		t.Fatalf("disabled route: %d %q", resp.StatusCode, body)
	}
	if got, _ := last(); got.path != "/stream" || !got.chunked || got.contentLength != "" {
		t.Errorf("with the filter disabled the upstream saw %+v; want the body chunked as sent", got)
	}
}

// TestBufferFilterAfterABodyHoldingFilter puts the buffer filter after
// ext_authz with with_request_body, which holds the whole body for its
// check before it lets the headers go on: the body the manager held for
// ext_authz must then reach the buffer filter, which parks the headers in
// turn, over HTTP/1.1 (chunked and with a Content-Length) and HTTP/2. The
// requests hung before, the held body waiting for a chain that was parked.
func TestBufferFilterAfterABodyHoldingFilter(t *testing.T) {
	up := headerEchoUpstream(t)
	p := startAuthz(t, authzConfig(pluginBin(t, "echo"), up.Addr, "",
		"      with_request_body = { max_request_bytes = 65536 }\n      timeout = \"10s\"\n"+bufferFilter(1<<20), ""))
	body := bytes.Repeat([]byte("0123456789"), 5000)
	for _, tc := range []struct {
		name    string
		c       *http.Client
		chunked bool
	}{{"http1 chunked", newClient(nil), true}, {"http1 content-length", newClient(nil), false}, {"h2c", h2cClient(nil), true}} {
		var rd io.Reader = bytes.NewReader(body)
		if tc.chunked {
			rd = io.MultiReader(rd) // no length known: sent chunked, or without content-length
		}
		req, err := http.NewRequest("POST", "http://"+p.Addr("http")+"/upload", rd)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := do(t, tc.c, req)
		if resp.StatusCode != 200 || resp.Header.Get("x-up-body-len") != fmt.Sprint(len(body)) ||
			resp.Header.Get("x-up-x-body-len") != fmt.Sprint(len(body)) {
			t.Errorf("%s: %d, upstream body %q bytes, plugin saw %q; want 200 and %d for both", tc.name, resp.StatusCode,
				resp.Header.Get("x-up-body-len"), resp.Header.Get("x-up-x-body-len"), len(body))
		}
		if got := resp.Header.Get("x-up-content-length"); got != fmt.Sprint(len(body)) {
			t.Errorf("%s: upstream content-length %q, want %d", tc.name, got, len(body))
		}
	}
}
