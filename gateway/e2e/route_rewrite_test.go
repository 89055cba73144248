package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// uriUpstream answers "<name> <request-uri> host=<host> orig=<values of
// x-envoy-original-path, comma-separated>".
func uriUpstream(t *testing.T, name string) *testutil.Server {
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s orig=%s", name, r.RequestURI, r.Host, strings.Join(r.Header.Values("X-Envoy-Original-Path"), ","))
	}))
}

// expectBody GETs url through c and fails t unless the answer is 200 with
// body want; hdr are header name/value pairs ("host" sets the authority).
func expectBody(t *testing.T, c *http.Client, url, want string, hdr ...string) {
	t.Helper()
	resp, body := get(t, c, url, hdr...)
	if resp.StatusCode != 200 || string(body) != want {
		t.Errorf("GET %s: status %d, body %q; want 200, %q", url, resp.StatusCode, body, want)
	}
}

// expectStatus GETs url through c and fails t unless the answer has status
// want.
func expectStatus(t *testing.T, c *http.Client, url string, want int) {
	t.Helper()
	if resp, body := get(t, c, url); resp.StatusCode != want {
		t.Errorf("GET %s: status %d (body %q), want %d", url, resp.StatusCode, body, want)
	}
}

// TestRouteQueryParameterMatching checks match.query_parameters: every
// matcher must match the first parameter of its name, values are compared
// as sent (percent-encoded, as in Envoy) and a parameter without "=" is
// present with an empty value.
func TestRouteQueryParameterMatching(t *testing.T) {
	a, b, c := uriUpstream(t, "A"), uriUpstream(t, "B"), uriUpstream(t, "C")
	routes := route(`prefix = "/q/", query_parameters = [{ name = "v", exact = "a%20b" }]`, "a") +
		route(`prefix = "/q/", query_parameters = [{ name = "flag", present = true }]`, "b") +
		route(`prefix = "/q/", query_parameters = [{ name = "id", regex = "[0-9]+" }, { name = "debug", present = false }]`, "c") +
		route(`prefix = "/q/", query_parameters = [{ name = "env", prefix = "CAN", ignore_case = true }]`, "a")
	p := gwtest.Start(t, config(1, routes, cluster("a", a.Addr), cluster("b", b.Addr), cluster("c", c.Addr)))
	base, host := "http://"+p.Addr("http"), p.Addr("http")
	cl := newClient(nil)

	t.Run("exact value as sent", func(t *testing.T) {
		expectBody(t, cl, base+"/q/?v=a%20b", "A /q/?v=a%20b host="+host+" orig=")
		expectStatus(t, cl, base+"/q/?v=a+b", 404) // not decoded: a+b is not a%20b
	})
	t.Run("first parameter of the name counts", func(t *testing.T) {
		expectStatus(t, cl, base+"/q/?v=x&v=a%20b", 404)
	})
	t.Run("parameter without value is present", func(t *testing.T) {
		expectBody(t, cl, base+"/q/?flag", "B /q/?flag host="+host+" orig=")
		expectBody(t, cl, base+"/q/?x=1&flag=", "B /q/?x=1&flag= host="+host+" orig=")
	})
	t.Run("all matchers must match", func(t *testing.T) {
		expectBody(t, cl, base+"/q/?id=42", "C /q/?id=42 host="+host+" orig=")
		expectStatus(t, cl, base+"/q/?id=42&debug", 404)
		expectStatus(t, cl, base+"/q/?id=4a2", 404)
	})
	t.Run("ignore_case prefix", func(t *testing.T) {
		expectBody(t, cl, base+"/q/?env=canary-1", "A /q/?env=canary-1 host="+host+" orig=")
	})
	t.Run("no query", func(t *testing.T) {
		expectStatus(t, cl, base+"/q/", 404)
	})
}

// TestRouteCaseInsensitiveMatching checks match.case_sensitive = false on
// prefix and exact paths, and that the default stays case-sensitive.
func TestRouteCaseInsensitiveMatching(t *testing.T) {
	a, b := uriUpstream(t, "A"), uriUpstream(t, "B")
	routes := route(`prefix = "/Api/", case_sensitive = false`, "a", `prefix_rewrite = "/v1/"`) +
		route(`path = "/Exact", case_sensitive = false`, "b") +
		route(`prefix = "/cs/"`, "b")
	p := gwtest.Start(t, config(1, routes, cluster("a", a.Addr), cluster("b", b.Addr)))
	base, host := "http://"+p.Addr("http"), p.Addr("http")
	cl := newClient(nil)

	t.Run("prefix in any case, rewritten", func(t *testing.T) {
		expectBody(t, cl, base+"/API/x?q=1", "A /v1/x?q=1 host="+host+" orig=")
		expectBody(t, cl, base+"/api/y", "A /v1/y host="+host+" orig=")
	})
	t.Run("exact path in any case", func(t *testing.T) {
		expectBody(t, cl, base+"/eXACT", "B /eXACT host="+host+" orig=")
		expectStatus(t, cl, base+"/exact/more", 404)
	})
	t.Run("case-sensitive by default", func(t *testing.T) {
		expectBody(t, cl, base+"/cs/x", "B /cs/x host="+host+" orig=")
		expectStatus(t, cl, base+"/CS/x", 404)
	})
}
