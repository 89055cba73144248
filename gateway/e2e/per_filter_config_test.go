package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// Tests of typed_per_filter_config: a filter's settings on a route, a
// virtual host or a route table, the most specific winning.

// perFilter returns the lines of a route's (or, with level
// "virtual_host" or "", a virtual host's or route table's)
// typed_per_filter_config table for filter, with the given key lines.
func perFilter(level, filter string, lines ...string) string {
	tbl := "route_config"
	switch level {
	case "route":
		tbl += ".virtual_host.route"
	case "virtual_host":
		tbl += ".virtual_host"
	}
	return fmt.Sprintf("\n    [%s.typed_per_filter_config.%q]\n    %s\n", tbl, filter, strings.Join(lines, "\n    "))
}

// virtualHost opens a virtual host block of route_config "local".
func virtualHost(name string, domains ...string) string {
	return fmt.Sprintf("\n  [[route_config.virtual_host]]\n  name = %q\n  domains = [%q]\n", name, strings.Join(domains, `", "`))
}

// protocols are the clients each test runs with.
var protocols = []struct {
	name   string
	client func() *http.Client
}{{"http1", func() *http.Client { return newClient(nil) }}, {"h2c", func() *http.Client { return h2cClient(nil) }}}

// TestPerFilterConfigCORSPolicyPerVirtualHostAndRoute: the filter allows
// https://app.example.com; the virtual host api.test replaces that with
// https://api-client.example, and its route /special with
// https://special.example. Each request gets the CORS headers of its
// route's policy only, preflights included, over HTTP/1.1 and h2c; a key
// a route's table leaves out comes from its virtual host's (/special's
// methods, /hdrs's origins and methods), not from the filter's.
func TestPerFilterConfigCORSPolicyPerVirtualHostAndRoute(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Host, r.URL.Path)
	}))
	const cors = "sluice.filters.http.cors"
	routes := route(`prefix = "/"`, "up") +
		virtualHost("api", "api.test") +
		perFilter("virtual_host", cors, `allow_origin_string_match = [{ exact = "https://api-client.example" }]`, `allow_methods = "DELETE"`) +
		route(`prefix = "/special"`, "up") +
		perFilter("route", cors, `allow_origin_string_match = [{ suffix = ".special.example" }]`, `expose_headers = "x-special"`) +
		route(`prefix = "/hdrs"`, "up") +
		perFilter("route", cors, `allow_headers = "x-token"`) +
		route(`prefix = "/"`, "up")
	cfg := withHTTPFilter(config(1, routes, cluster("up", up.Addr)), `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.cors"
      [listener.filter_chain.filter.config.http_filter.config]
      allow_origin_string_match = [{ exact = "https://app.example.com" }]
      allow_methods = "GET, PUT"
      expose_headers = "x-filter"`)
	p := gwtest.Start(t, cfg)
	base := "http://" + p.Addr("http")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			c := proto.client()
			for _, tc := range []struct {
				host, path, origin string
				allowed            bool
				expose             string
			}{
				{"other.test", "/x", "https://app.example.com", true, "x-filter"},
				{"other.test", "/x", "https://api-client.example", false, ""},
				{"api.test", "/x", "https://api-client.example", true, ""},
				{"api.test", "/x", "https://app.example.com", false, ""},
				{"api.test", "/special/y", "https://a.special.example", true, "x-special"},
				{"api.test", "/special/y", "https://api-client.example", false, ""},
			} {
				resp, body := get(t, c, base+tc.path, "host", tc.host, "origin", tc.origin)
				if want := tc.host + " " + tc.path; resp.StatusCode != 200 || string(body) != want {
					t.Fatalf("%s%s from %s: %d %q, want 200 %q", tc.host, tc.path, tc.origin, resp.StatusCode, body, want)
				}
				acao := resp.Header.Get("Access-Control-Allow-Origin")
				if tc.allowed && acao != tc.origin || !tc.allowed && acao != "" {
					t.Errorf("%s%s from %s: access-control-allow-origin %q, allowed %v", tc.host, tc.path, tc.origin, acao, tc.allowed)
				}
				if got := resp.Header.Get("Access-Control-Expose-Headers"); got != tc.expose {
					t.Errorf("%s%s from %s: access-control-expose-headers %q, want %q", tc.host, tc.path, tc.origin, got, tc.expose)
				}
			}
			// A preflight of the virtual host's origin is answered with
			// the virtual host's methods, without reaching the upstream.
			// A route's table takes the keys it leaves out from its
			// virtual host's, as Envoy reads the policies key by key:
			// /special its methods, /hdrs its origins and methods.
			for _, tc := range []struct{ path, origin, headers string }{
				{"/x", "https://api-client.example", ""},
				{"/special/y", "https://a.special.example", ""},
				{"/hdrs", "https://api-client.example", "x-token"},
			} {
				before := up.RequestCount()
				req, _ := http.NewRequest("OPTIONS", base+tc.path, nil)
				req.Host = "api.test"
				req.Header.Set("Origin", tc.origin)
				req.Header.Set("Access-Control-Request-Method", "DELETE")
				resp, _ := do(t, c, req)
				if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Methods") != "DELETE" ||
					resp.Header.Get("Access-Control-Allow-Origin") != tc.origin || resp.Header.Get("Access-Control-Allow-Headers") != tc.headers {
					t.Errorf("preflight %s from %s: %d, allow-methods %q, allow-origin %q, allow-headers %q", tc.path, tc.origin,
						resp.StatusCode, resp.Header.Get("Access-Control-Allow-Methods"), resp.Header.Get("Access-Control-Allow-Origin"),
						resp.Header.Get("Access-Control-Allow-Headers"))
				}
				if n := up.RequestCount() - before; n != 0 {
					t.Errorf("the preflight of %s reached the upstream (%d requests)", tc.path, n)
				}
			}
		})
	}
}

// TestPerFilterConfigLocalRateLimitRouteHasItsOwnBucket: /limited has a
// per-route bucket of 3 tokens and status 503, next to the filter's
// bucket of 1000 for every other route. With two workers and a new
// connection per request, alternating HTTP/1.1 and h2c, the route's
// bucket is shared by both workers (host-state region): exactly its first
// 3 requests pass, while /free is not limited; each bucket counts under
// its own stat_prefix.
func TestPerFilterConfigLocalRateLimitRouteHasItsOwnBucket(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	const rl = "sluice.filters.http.local_ratelimit"
	routes := route(`prefix = "/limited"`, "up") +
		perFilter("route", rl, `stat_prefix = "per_route"`, `status = 503`,
			`token_bucket = { max_tokens = 3, fill_interval = "1h" }`) +
		route(`prefix = "/"`, "up")
	cfg := withHTTPFilter(config(2, routes, cluster("up", up.Addr)), `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.local_ratelimit"
      [listener.filter_chain.filter.config.http_filter.config]
      stat_prefix = "filter"
      token_bucket = { max_tokens = 1000, fill_interval = "1h" }`) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")
	var dials atomic.Int64
	h1 := newClient(&dials)
	h1.Transport.(*http.Transport).DisableKeepAlives = true
	clients := []*http.Client{h1, h2cClient(nil)}
	var got []int
	for i := range 6 {
		c := clients[i%2]
		resp, _ := get(t, c, base+"/limited/x")
		got = append(got, resp.StatusCode)
		if i%2 == 1 {
			c.CloseIdleConnections()
		}
	}
	if want := []int{200, 200, 200, 503, 503, 503}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("/limited statuses %v, want %v", got, want)
	}
	for i := range 6 {
		if resp, _ := get(t, clients[i%2], base+"/free"); resp.StatusCode != 200 {
			t.Errorf("/free request %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	waitCounter(t, admin, "http_local_rate_limit.per_route.ok", 3)
	waitCounter(t, admin, "http_local_rate_limit.per_route.rate_limited", 3)
	waitCounter(t, admin, "http_local_rate_limit.filter.ok", 6)
	if st := adminCounters(t, admin); st["http_local_rate_limit.filter.rate_limited"] != 0 || st["http_local_rate_limit.filter.enabled"] != 6 {
		t.Errorf("filter counters: enabled %v rate_limited %v, want 6 and 0",
			st["http_local_rate_limit.filter.enabled"], st["http_local_rate_limit.filter.rate_limited"])
	}
}

// TestPerFilterConfigExtAuthzDisabledAndContextExtensions: the filter
// sends context extensions tier=base and team=core; /pr-off disables the
// filter with a per-route table (a request the plugin would deny passes
// unchecked), /pr-ctx merges tier=gold and route=ctx over the filter's
// (the echo plugin hands them to the upstream as x-ctx-*), and other
// routes get the filter's; the route table's site=main and route=table
// reach every checked route, under a route's own keys (levels merge, as in
// Envoy), over HTTP/1.1 and h2c.
func TestPerFilterConfigExtAuthzDisabledAndContextExtensions(t *testing.T) {
	up := headerEchoUpstream(t)
	const az = "sluice.filters.http.ext_authz"
	cfg := authzConfig(pluginBin(t, "echo"), up.Addr, "", `      context_extensions = { tier = "base", team = "core" }`, "")
	open := route(`prefix = "/open"`, "up", `disabled_filters = ["sluice.filters.http.ext_authz"]`)
	if !strings.Contains(cfg, open) {
		t.Fatal("authzConfig has no /open route")
	}
	cfg = strings.Replace(cfg, open,
		route(`prefix = "/pr-off"`, "up")+perFilter("route", az, "disabled = true")+
			route(`prefix = "/pr-ctx"`, "up")+perFilter("route", az, `check_settings = { context_extensions = { tier = "gold", route = "ctx" } }`)+
			open+
			// The route table's extensions reach every route, merged
			// under a route's own (Envoy merges the levels).
			perFilter("", az, `check_settings = { context_extensions = { site = "main", route = "table" } }`), 1)
	p := startAuthz(t, cfg)
	base := "http://" + p.Addr("http")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			c := proto.client()
			resp, _ := get(t, c, base+"/pr-off", "x-deny", "401")
			if resp.StatusCode != 200 || resp.Header.Get("x-up-x-auth-user") != "" {
				t.Errorf("/pr-off: %d, x-auth-user %q; want 200 unchecked", resp.StatusCode, resp.Header.Get("x-up-x-auth-user"))
			}
			if resp, _ := get(t, c, base+"/elsewhere", "x-deny", "401"); resp.StatusCode != 401 {
				t.Errorf("/elsewhere with x-deny: %d, want 401 from the plugin", resp.StatusCode)
			}
			for _, tc := range []struct {
				path                  string
				tier, team, rte, site string
			}{
				{"/pr-ctx", "gold", "core", "ctx", "main"},
				{"/elsewhere", "base", "core", "table", "main"},
			} {
				resp, _ := get(t, c, base+tc.path)
				h := resp.Header
				if resp.StatusCode != 200 || h.Get("x-up-x-auth-user") != "tester" {
					t.Fatalf("%s: %d, x-auth-user %q; want 200 checked", tc.path, resp.StatusCode, h.Get("x-up-x-auth-user"))
				}
				if h.Get("x-up-x-ctx-tier") != tc.tier || h.Get("x-up-x-ctx-team") != tc.team || h.Get("x-up-x-ctx-route") != tc.rte ||
					h.Get("x-up-x-ctx-site") != tc.site {
					t.Errorf("%s: context extensions tier %q team %q route %q site %q, want %q %q %q %q", tc.path,
						h.Get("x-up-x-ctx-tier"), h.Get("x-up-x-ctx-team"), h.Get("x-up-x-ctx-route"), h.Get("x-up-x-ctx-site"),
						tc.tier, tc.team, tc.rte, tc.site)
				}
			}
		})
	}
}

// TestPerFilterConfigBufferLimitPerRoute: the filter holds bodies up to 1
// KiB; /upload raises that to 2 MiB (above the connection's 1 MiB buffer
// limit) and /stream disables the filter. A 1.5 MiB chunked body reaches
// the upstream whole with a Content-Length on /upload, streams on
// /stream, and gets 413 elsewhere, over HTTP/1.1 and h2c.
func TestPerFilterConfigBufferLimitPerRoute(t *testing.T) {
	type seen struct {
		contentLength string
		n             int64
	}
	var last atomic.Pointer[seen]
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		last.Store(&seen{r.Header.Get("Content-Length"), n})
		fmt.Fprintf(w, "got %d", n)
	}))
	const buf = "sluice.filters.http.buffer"
	routes := route(`prefix = "/upload"`, "up") + perFilter("route", buf, "max_request_bytes = 2097152") +
		route(`prefix = "/stream"`, "up") + perFilter("route", buf, "disabled = true") +
		route(`prefix = "/"`, "up")
	p := gwtest.Start(t, withHTTPFilter(config(1, routes, cluster("up", up.Addr)), bufferFilter(1024)))
	base := "http://" + p.Addr("http")
	const n = 3 << 19 // 1.5 MiB
	body := bytes.Repeat([]byte("u"), n)
	post := func(t *testing.T, c *http.Client, path string) (*http.Response, []byte) {
		t.Helper()
		last.Store(nil)
		// No ContentLength: the body goes chunked (DATA frames without
		// content-length on h2c), so the filter counts it as it comes.
		req, err := http.NewRequest("POST", base+path, io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		return do(t, c, req)
	}
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			c := proto.client()
			resp, got := post(t, c, "/upload")
			s := last.Load()
			if resp.StatusCode != 200 || string(got) != fmt.Sprintf("got %d", n) || s == nil || s.contentLength != fmt.Sprint(n) {
				t.Errorf("/upload: %d %q, upstream saw %+v; want the whole body with a Content-Length", resp.StatusCode, got, s)
			}
			resp, got = post(t, c, "/stream")
			s = last.Load()
			if resp.StatusCode != 200 || string(got) != fmt.Sprintf("got %d", n) || s == nil || s.contentLength != "" {
				t.Errorf("/stream: %d %q, upstream saw %+v; want the body streamed, without a Content-Length", resp.StatusCode, got, s)
			}
			// Elsewhere the filter's 1 KiB holds.
			last.Store(nil)
			req, _ := http.NewRequest("POST", base+"/other", io.NopCloser(bytes.NewReader(body[:4096])))
			resp, err := c.Do(req)
			if err != nil {
				// The proxy may answer and close before the client wrote
				// everything; what matters is that nothing reached the
				// upstream.
				t.Logf("/other: %v", err)
			} else {
				resp.Body.Close()
				if resp.StatusCode != 413 {
					t.Errorf("/other: %d, want 413", resp.StatusCode)
				}
			}
			if s := last.Load(); s != nil {
				t.Errorf("/other: the upstream saw %+v; want nothing", s)
			}
		})
	}
}
