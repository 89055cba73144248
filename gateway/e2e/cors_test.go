package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// corsFilter is the http_filter table of a CORS policy that allows
// https://app.example.com and any https origin under example.org.
const corsFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.cors"
      [listener.filter_chain.filter.config.http_filter.config]
      allow_origin_string_match = [{ exact = "https://app.example.com" }, { regex = "https://[a-z]+\\.example\\.org" }]
      allow_methods = "GET, PUT"
      allow_headers = "content-type, x-token"
      expose_headers = "x-request-id"
      max_age = "600"
      allow_credentials = true
`

// TestCORSPreflightsAndResponses checks the CORS filter with a real
// upstream: an allowed origin's preflight is answered without reaching the
// upstream, its actual requests get access-control-* headers; an origin
// not allowed gets none and its preflight goes upstream; a request without
// Origin is untouched; the counters say so.
func TestCORSPreflightsAndResponses(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}))
	cfg := withHTTPFilter(simpleConfig(1, up.Addr), corsFilter) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")
	c := newClient(nil)
	preflight := func(t *testing.T, origin string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("OPTIONS", base+"/api", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "PUT")
		req.Header.Set("Access-Control-Request-Headers", "x-token")
		return do(t, c, req)
	}

	t.Run("allowed preflight answered locally", func(t *testing.T) {
		before := up.RequestCount()
		resp, body := preflight(t, "https://app.example.com")
		want := map[string]string{
			"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Methods": "GET, PUT",
			"Access-Control-Allow-Headers": "content-type, x-token", "Access-Control-Max-Age": "600",
			"Access-Control-Allow-Credentials": "true",
		}
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Errorf("status %d, body %q; want 200 and no body", resp.StatusCode, body)
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %q, want %q", k, got, v)
			}
		}
		if n := up.RequestCount() - before; n != 0 {
			t.Errorf("the preflight reached the upstream (%d requests)", n)
		}
	})
	t.Run("allowed actual request", func(t *testing.T) {
		resp, body := get(t, c, base+"/api", "Origin", "https://shop.example.org")
		if string(body) != "GET /api" {
			t.Fatalf("body %q: the request did not reach the upstream", body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example.org" {
			t.Errorf("access-control-allow-origin %q, want the request's origin", got)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "x-request-id" {
			t.Errorf("access-control-expose-headers %q", got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); got != "" {
			t.Errorf("an actual response got access-control-allow-methods %q (preflight only)", got)
		}
		if !containsFold(resp.Header.Values("Vary"), "origin") {
			t.Errorf("vary %q, want origin", resp.Header.Values("Vary"))
		}
	})
	t.Run("origin not allowed", func(t *testing.T) {
		for _, origin := range []string{"https://evil.example.com", "https://app.example.com.evil.net", "http://shop.example.org"} {
			resp, body := get(t, c, base+"/api", "Origin", origin)
			if string(body) != "GET /api" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("origin %s: body %q, allow-origin %q; want the upstream's answer without CORS headers", origin, body, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		resp, body := preflight(t, "https://evil.example.com")
		if string(body) != "OPTIONS /api" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight of an origin not allowed: body %q, allow-origin %q; want it forwarded, without CORS headers", body, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("no origin", func(t *testing.T) {
		resp, body := get(t, c, base+"/api")
		if string(body) != "GET /api" || resp.Header.Get("Access-Control-Allow-Origin") != "" || containsFold(resp.Header.Values("Vary"), "origin") {
			t.Errorf("body %q, headers %v: a request without Origin must pass untouched", body, resp.Header)
		}
	})
	st := adminCounters(t, admin)
	if v, inv := st["http.ingress_http.cors.origin_valid"], st["http.ingress_http.cors.origin_invalid"]; v != 2 || inv != 4 {
		t.Errorf("cors.origin_valid %v, origin_invalid %v; want 2 and 4", v, inv)
	}
}
