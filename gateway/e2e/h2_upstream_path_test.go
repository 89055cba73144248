package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// TestHTTP2UpstreamGetsThePathAsRouted: with path normalization off, an
// HTTP/2 upstream gets the request target byte for byte as the routes
// matched it, as an HTTP/1.1 upstream does: no re-escaping of characters
// such as '{', no rewriting of a path that starts with "//".
func TestHTTP2UpstreamGetsThePathAsRouted(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RequestURI) })
	h2addr, _ := h2Upstream(t, echo, false)
	cfg := withHCM(config(1, route(`prefix = "/"`, "h2"), cluster("h2", h2addr)+"protocol = \"http2\"\n"),
		`normalize_path = false`, `merge_slashes = false`)
	p := gwtest.Start(t, cfg)
	for _, target := range []string{"/a{b}|c^d?x={1}", "//double//slash?q", "/plain/path?", "/%7Bkept%7D"} {
		c := dial(t, p.Addr("http"))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
		resp, body := readResponse(t, bufio.NewReader(c), "GET")
		if resp.StatusCode != 200 || string(body) != target {
			t.Errorf("%s: %d, the HTTP/2 upstream saw %q", target, resp.StatusCode, body)
		}
	}
}
