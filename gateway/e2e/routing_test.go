package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// namedUpstream answers "<name> <request-uri> host=<host>".
func namedUpstream(t *testing.T, name string) *testutil.Server {
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s", name, r.RequestURI, r.Host)
	}))
}

// hasFlag reports whether the response names the Envoy response flag,
// in its body or any header value.
func hasFlag(resp *http.Response, body []byte, flag string) bool {
	if strings.Contains(string(body), flag) {
		return true
	}
	for _, vs := range resp.Header {
		for _, v := range vs {
			if strings.Contains(v, flag) {
				return true
			}
		}
	}
	return false
}

// TestRoutingAndLocalReplies checks route matching, route actions and
// rewrites, and the local replies sluice sends when it cannot proxy.
func TestRoutingAndLocalReplies(t *testing.T) {
	a := namedUpstream(t, "A")
	b := namedUpstream(t, "B")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	reset := testutil.RawUpstream(t, func(c net.Conn) {
		if _, err := testutil.ReadRequest(bufio.NewReader(c)); err == nil {
			testutil.Reset(c)
		}
	})
	garbage := testutil.RawUpstream(t, func(c net.Conn) {
		if _, err := testutil.ReadRequest(bufio.NewReader(c)); err == nil {
			fmt.Fprintf(c, "this is not HTTP\r\n\r\n")
		}
	})
	dead := testutil.DeadAddr(t)

	routes := route(`path = "/exact"`, "a") +
		route(`regex = "/re/[0-9]+"`, "b") +
		route(`prefix = "/hdr/", headers = [{ name = "x-env", exact = "canary" }]`, "b") +
		route(`prefix = "/hdr/"`, "a") +
		route(`prefix = "/api/"`, "a", `prefix_rewrite = "/v2/"`) +
		route(`prefix = "/hostrw/"`, "a", `host_rewrite = "internal.example"`) +
		route(`prefix = "/slow/"`, "hang", `timeout = "300ms"`) +
		route(`prefix = "/dead/"`, "dead") +
		route(`prefix = "/reset/"`, "reset") +
		route(`prefix = "/garbage/"`, "garbage") +
		route(`prefix = "/prefix/"`, "b") + `
    [[route_config.virtual_host.route]]
    match = { path = "/direct" }
    direct_response = { status = 418, body = "direct answer\n" }

    [[route_config.virtual_host.route]]
    match = { prefix = "/old/" }
    redirect = { path = "/new/", status = 302 }
`
	p := gwtest.Start(t, config(1, routes,
		cluster("a", a.Addr), cluster("b", b.Addr), cluster("hang", hang.Addr),
		cluster("dead", dead), cluster("reset", reset.Addr), cluster("garbage", garbage.Addr)))
	base := "http://" + p.Addr("http")
	c := newClient(nil)

	expectBody := func(t *testing.T, url, want string, hdr ...string) {
		t.Helper()
		resp, body := get(t, c, url, hdr...)
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("GET %s: status %d, body %q; want 200, %q", url, resp.StatusCode, body, want)
		}
	}

	t.Run("exact path", func(t *testing.T) {
		expectBody(t, base+"/exact", "A /exact host="+p.Addr("http"))
		resp, _ := get(t, c, base+"/exact/more")
		if resp.StatusCode != 404 {
			t.Errorf("/exact/more: status %d, want 404 (an exact match must not match a longer path)", resp.StatusCode)
		}
	})
	t.Run("prefix", func(t *testing.T) {
		expectBody(t, base+"/prefix/x/y?q=1", "B /prefix/x/y?q=1 host="+p.Addr("http"))
	})
	t.Run("regex matches the whole path", func(t *testing.T) {
		expectBody(t, base+"/re/123", "B /re/123 host="+p.Addr("http"))
		resp, _ := get(t, c, base+"/re/123x")
		if resp.StatusCode != 404 {
			t.Errorf("/re/123x: status %d, want 404", resp.StatusCode)
		}
	})
	t.Run("header match", func(t *testing.T) {
		expectBody(t, base+"/hdr/x", "B /hdr/x host="+p.Addr("http"), "X-Env", "canary")
		expectBody(t, base+"/hdr/x", "A /hdr/x host="+p.Addr("http"), "X-Env", "stable")
	})
	t.Run("direct response", func(t *testing.T) {
		resp, body := get(t, c, base+"/direct")
		if resp.StatusCode != 418 || string(body) != "direct answer\n" {
			t.Errorf("status %d, body %q; want 418, %q", resp.StatusCode, body, "direct answer\n")
		}
	})
	t.Run("redirect", func(t *testing.T) {
		resp, _ := get(t, c, base+"/old/page")
		if resp.StatusCode != 302 {
			t.Fatalf("status %d, want 302", resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Path != "/new/" {
			t.Errorf("Location %q, want a URL with path /new/", resp.Header.Get("Location"))
		}
	})
	t.Run("prefix_rewrite seen by the upstream", func(t *testing.T) {
		expectBody(t, base+"/api/users?id=7", "A /v2/users?id=7 host="+p.Addr("http"))
	})
	t.Run("host_rewrite seen by the upstream", func(t *testing.T) {
		expectBody(t, base+"/hostrw/x", "A /hostrw/x host=internal.example")
	})
	t.Run("no route is 404 NR", func(t *testing.T) {
		resp, body := get(t, c, base+"/nowhere")
		if resp.StatusCode != 404 || !hasFlag(resp, body, "NR") {
			t.Errorf("status %d, body %q, headers %v; want 404 naming flag NR", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("dead endpoint is 503 UF", func(t *testing.T) {
		resp, body := get(t, c, base+"/dead/x")
		if resp.StatusCode != 503 || !hasFlag(resp, body, "UF") {
			t.Errorf("status %d, body %q; want 503 naming flag UF", resp.StatusCode, body)
		}
	})
	t.Run("upstream slower than route timeout is 504 UT", func(t *testing.T) {
		resp, body := get(t, c, base+"/slow/x")
		if resp.StatusCode != 504 || !hasFlag(resp, body, "UT") {
			t.Errorf("status %d, body %q; want 504 naming flag UT", resp.StatusCode, body)
		}
	})
	t.Run("upstream reset before response is 502 or 503 UC", func(t *testing.T) {
		resp, body := get(t, c, base+"/reset/x")
		if (resp.StatusCode != 502 && resp.StatusCode != 503) || !hasFlag(resp, body, "UC") {
			t.Errorf("status %d, body %q; want 502 or 503 naming flag UC", resp.StatusCode, body)
		}
	})
	t.Run("invalid upstream response is 502 UPE", func(t *testing.T) {
		resp, body := get(t, c, base+"/garbage/x")
		if resp.StatusCode != 502 || !hasFlag(resp, body, "UPE") {
			t.Errorf("status %d, body %q; want 502 naming flag UPE", resp.StatusCode, body)
		}
	})
}

// TestRouteMatchesPseudoHeaders checks that a route's match.headers may
// name the request's pseudo-headers, as Envoy's do (:method is the common
// one), over HTTP/1.1 and HTTP/2.
func TestRouteMatchesPseudoHeaders(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream "+r.Method)
	}))
	routes := `
    [[route_config.virtual_host.route]]
    match = { prefix = "/", headers = [{ name = ":method", exact = "DELETE" }] }
    direct_response = { status = 405, body = "no deletes" }
    [[route_config.virtual_host.route]]
    match = { prefix = "/", headers = [{ name = ":scheme", exact = "https" }] }
    direct_response = { status = 421, body = "not over TLS here" }
    [[route_config.virtual_host.route]]
    match = { prefix = "/", headers = [{ name = ":authority", prefix = "admin." }, { name = ":path", prefix = "/x" }] }
    direct_response = { status = 403, body = "not here" }` + route(`prefix = "/"`, "up")
	p := gwtest.Start(t, config(1, routes, cluster("up", up.Addr)))
	base := "http://" + p.Addr("http")
	for _, c := range []*http.Client{newClient(nil), h2cClient(nil)} {
		for _, tc := range []struct {
			method, host, body string
			code               int
		}{
			{"GET", "", "upstream GET", 200},
			{"DELETE", "", "no deletes", 405},
			{"POST", "", "upstream POST", 200},
			{"GET", "admin.example", "not here", 403}, // :authority and :path
		} {
			req, _ := http.NewRequest(tc.method, base+"/x", nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Errorf("%s %s (host %q): %d %q, want %d %q", resp.Proto, tc.method, tc.host, resp.StatusCode, b, tc.code, tc.body)
			}
		}
	}
}
