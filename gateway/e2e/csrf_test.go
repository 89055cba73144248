package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// csrfFilter enforces the CSRF policy, with the origins under
// .trusted.example allowed besides each request's own.
const csrfFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.csrf"
      [listener.filter_chain.filter.config.http_filter.config]
      additional_origins = [{ suffix = ".trusted.example" }]
`

// TestCSRFChecksMutatingRequestsOrigins checks the CSRF filter with a real
// upstream: a same-origin POST (by Origin or by Referer) goes through, a
// cross-origin one or one without a source origin gets 403 "Invalid
// origin" without reaching the upstream, GET is not checked, an additional
// origin is allowed, a route whose per-route policy is shadow-only lets a
// cross-origin POST through and counts it; the counters are Envoy's.
func TestCSRFChecksMutatingRequestsOrigins(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}))
	routes := route(`prefix = "/shadow"`, "up") +
		perFilter("route", "sluice.filters.http.csrf", "filter_enabled = 0", "shadow_enabled = 100") +
		route(`prefix = "/"`, "up")
	cfg := withHTTPFilter(config(1, routes, cluster("up", up.Addr)), csrfFilter) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	self := "http://" + p.Addr("http")
	c := newClient(nil)
	send := func(t *testing.T, method, path string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, self+path, strings.NewReader("x=1"))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, body := do(t, c, req)
		return resp.StatusCode, string(body)
	}
	expect := func(t *testing.T, method, path string, wantUp bool, hdr ...string) {
		t.Helper()
		before := up.RequestCount()
		code, body := send(t, method, path, hdr...)
		reached := up.RequestCount() - before
		switch {
		case wantUp && (code != 200 || body != method+" "+path || reached != 1):
			t.Errorf("%s %s %v: %d %q (%d upstream requests), want the upstream's 200", method, path, hdr, code, body, reached)
		case !wantUp && (code != 403 || body != "Invalid origin" || reached != 0):
			t.Errorf("%s %s %v: %d %q (%d upstream requests), want 403 \"Invalid origin\" from sluice", method, path, hdr, code, body, reached)
		}
	}

	t.Run("same origin", func(t *testing.T) {
		expect(t, "POST", "/a", true, "Origin", self)
		expect(t, "PUT", "/a", true, "Referer", self+"/form?x=1")
	})
	t.Run("cross origin", func(t *testing.T) {
		expect(t, "POST", "/a", false, "Origin", "https://evil.example")
		expect(t, "DELETE", "/a", false, "Origin", "http://127.0.0.2:1") // another host of the same scheme
		expect(t, "PATCH", "/a", false, "Origin", "null")
	})
	t.Run("missing source origin", func(t *testing.T) {
		expect(t, "POST", "/a", false)
	})
	t.Run("GET not checked", func(t *testing.T) {
		expect(t, "GET", "/a", true, "Origin", "https://evil.example")
	})
	t.Run("additional origin", func(t *testing.T) {
		expect(t, "POST", "/a", true, "Origin", "https://app.trusted.example")
	})
	t.Run("shadow route counts only", func(t *testing.T) {
		expect(t, "POST", "/shadow", true, "Origin", "https://evil.example")
	})
	st := adminCounters(t, admin)
	// valid: same origin ×2, additional ×1. invalid: evil, 127.0.0.2,
	// null, missing, shadow evil. missing: 1.
	for name, want := range map[string]float64{"request_valid": 3, "request_invalid": 5, "missing_source_origin": 1} {
		if got := st["http.ingress_http.csrf."+name]; got != want {
			t.Errorf("csrf.%s = %v, want %v", name, got, want)
		}
	}
}
