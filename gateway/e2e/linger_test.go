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

// An HTTP/1.1 connection that sluice closes while the client is still
// sending (a request answered before its body was read, a request rejected
// with more bytes behind it, requests pipelined behind a "Connection:
// close") ends with a lingering close, as Envoy's delayed close and nginx's
// lingering_close do: the client's whole input is taken (read and
// discarded) and the connection ends with a FIN after the response, not
// with a reset. A close with unread input sends a reset, which fails the
// client's send and can make its TCP stack drop the response it has not
// read yet (Linux keeps it readable; other stacks do not).
func TestHTTP1EarlyAnswerEndsWithFINNotReset(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	routes := `
    [[route_config.virtual_host.route]]
    match = { path = "/direct" }
    direct_response = { status = 418, body = "direct answer\n" }
` + route(`prefix = "/"`, "up")
	p := gwtest.Start(t, config(1, routes, cluster("up", up.Addr)))
	addr := p.Addr("http")

	body := strings.Repeat("b", 200<<10) // less than the 256 KiB discarded
	cases := []struct {
		name   string
		input  string
		status int
	}{
		{"local reply before the body", fmt.Sprintf("POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(body), body), 418},
		{"malformed head with more behind it", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n" + body, 400},
		{"requests pipelined behind a close", "GET /direct HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" +
			strings.Repeat("GET /direct HTTP/1.1\r\nHost: a\r\nX-Pad: "+strings.Repeat("p", 1000)+"\r\n\r\n", 200), 418},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			wrote := make(chan error, 1)
			go func() {
				_, err := io.WriteString(c, tc.input)
				wrote <- err
			}()
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("response body: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			select {
			case err := <-wrote:
				if err != nil {
					t.Errorf("sending the request's %d bytes failed: %v (the proxy reset the connection)", len(tc.input), err)
				}
			case <-time.After(ioTimeout):
				t.Fatalf("sending the request's %d bytes did not end in %v: the proxy stopped reading", len(tc.input), ioTimeout)
			}
			extra, err := io.ReadAll(br)
			switch {
			case isReset(err):
				t.Fatalf("connection reset after the response, want the end of the stream (FIN): %v", err)
			case err != nil:
				t.Fatalf("reading until the end: %v", err)
			case len(extra) > 0:
				t.Fatalf("bytes after the response: %q", truncate(extra, 200))
			}
		})
	}
}
