package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

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
		expectBody(t, cl, base+"/API/x?q=1", "A /v1/x?q=1 host="+host+" orig=/API/x?q=1")
		expectBody(t, cl, base+"/api/y", "A /v1/y host="+host+" orig=/api/y")
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

// TestRouteRegexRewrite checks regex_rewrite with Envoy's \N substitutions:
// it rewrites the path and not the query, replaces every match, and, as
// prefix_rewrite does, sends the original path in x-envoy-original-path
// (replacing one the client sent).
func TestRouteRegexRewrite(t *testing.T) {
	a := uriUpstream(t, "A")
	routes := route(`prefix = "/service/"`, "a", `regex_rewrite = { pattern = '^/service/([^/]+)(/.*)$', substitution = '\2/instance/\1' }`) +
		route(`prefix = "/g/"`, "a", `regex_rewrite = { pattern = "one", substitution = "two" }`) +
		route(`prefix = "/dollar/"`, "a", `regex_rewrite = { pattern = '^/dollar/(.*)$', substitution = '/d/$\1' }`) +
		route(`prefix = "/pre/"`, "a", `prefix_rewrite = "/"`) +
		route(`prefix = "/"`, "a")
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := strings.Replace(config(1, routes, cluster("a", a.Addr)), "    route_config = \"local\"\n", fmt.Sprintf(`    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      [listener.filter_chain.filter.config.access_log.json_format]
      path = "%%REQ(:PATH)%%"
      orig = "%%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%%"
`, logPath), 1)
	p := gwtest.Start(t, cfg)
	base, host := "http://"+p.Addr("http"), p.Addr("http")
	cl := newClient(nil)

	t.Run("capture groups", func(t *testing.T) {
		expectBody(t, cl, base+"/service/foo/v1/api?x=1", "A /v1/api/instance/foo?x=1 host="+host+" orig=/service/foo/v1/api?x=1")
	})
	t.Run("every match, query untouched", func(t *testing.T) {
		expectBody(t, cl, base+"/g/one/yyy/one?one=1", "A /g/two/yyy/two?one=1 host="+host+" orig=/g/one/yyy/one?one=1")
	})
	t.Run("no match still records the original path", func(t *testing.T) {
		expectBody(t, cl, base+"/g/zzz", "A /g/zzz host="+host+" orig=/g/zzz")
	})
	t.Run("dollar is literal", func(t *testing.T) {
		expectBody(t, cl, base+"/dollar/x", "A /d/$x host="+host+" orig=/dollar/x")
	})
	t.Run("prefix_rewrite records the original path", func(t *testing.T) {
		expectBody(t, cl, base+"/pre/a?b=c", "A /a?b=c host="+host+" orig=/pre/a?b=c")
	})
	t.Run("client's x-envoy-original-path is replaced", func(t *testing.T) {
		expectBody(t, cl, base+"/g/one", "A /g/two host="+host+" orig=/g/one", "X-Envoy-Original-Path", "/forged")
	})
	t.Run("no rewrite, no header", func(t *testing.T) {
		expectBody(t, cl, base+"/plain", "A /plain host="+host+" orig=")
	})
	t.Run("access log sees both paths", func(t *testing.T) {
		want := map[string]string{ // original path (the default format's) -> :path
			"/service/foo/v1/api?x=1": "/v1/api/instance/foo?x=1",
			"/pre/a?b=c":              "/a?b=c",
			"/plain":                  "/plain",
		}
		// Lines are written by a background writer: wait until they are there.
		deadline := time.Now().Add(ioTimeout)
		for {
			got := map[string]string{}
			for _, l := range readJSONLines(t, logPath) {
				got[l["orig"]] = l["path"]
			}
			missing := ""
			for orig, path := range want {
				if got[orig] != path {
					missing = fmt.Sprintf("original path %q logged with :path %q, want %q", orig, got[orig], path)
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s (log: %v)", missing, got)
			}
			time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		}
	})
}

// fakeDNS is a UDP DNS server on 127.0.0.1 port 0 that answers every A
// query with 127.0.0.1 and every other query with no records.
func fakeDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			m.Header.Response, m.Additionals = true, nil
			if q.Type == dnsmessage.TypeA {
				m.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 300},
					Body:   &dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}},
				}}
			}
			if out, err := m.Pack(); err == nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// TestRouteAutoHostRewrite checks auto_host_rewrite: the upstream sees the
// endpoint name as configured for strict_dns and logical_dns clusters, the
// address for static ones, and a route without it the client's authority.
func TestRouteAutoHostRewrite(t *testing.T) {
	a := uriUpstream(t, "A")
	resolver := fakeDNS(t)
	_, port, _ := net.SplitHostPort(a.Addr)
	dnsCluster := func(name, typ, endpoint string) string {
		return fmt.Sprintf("\n[[cluster]]\nname = %q\ntype = %q\nendpoints = [%q]\ndns_resolvers = [%q]\nconnect_timeout = \"1s\"\n",
			name, typ, endpoint, resolver)
	}
	routes := route(`prefix = "/static/"`, "static", `auto_host_rewrite = true`) +
		route(`prefix = "/strict/"`, "strict", `auto_host_rewrite = true`) +
		route(`prefix = "/logical/"`, "logical", `auto_host_rewrite = true`) +
		route(`prefix = "/"`, "strict")
	p := gwtest.Start(t, config(1, routes, cluster("static", a.Addr),
		dnsCluster("strict", "strict_dns", "backend.test:"+port),
		dnsCluster("logical", "logical_dns", "logical.test:"+port)))
	base := "http://" + p.Addr("http")
	cl := newClient(nil)

	expectBody(t, cl, base+"/static/x", "A /static/x host="+a.Addr+" orig=")
	expectBody(t, cl, base+"/strict/x", "A /strict/x host=backend.test:"+port+" orig=")
	expectBody(t, cl, base+"/logical/x", "A /logical/x host=logical.test:"+port+" orig=")
	expectBody(t, cl, base+"/other", "A /other host=client.example orig=", "Host", "client.example")
}

// TestRedirectRewrites checks the redirect options taken from Envoy's
// RedirectAction: prefix_rewrite, regex_rewrite, strip_query and port,
// beside path's handling of the query.
func TestRedirectRewrites(t *testing.T) {
	redirect := func(match, redirect string) string {
		return fmt.Sprintf("\n    [[route_config.virtual_host.route]]\n    match = { %s }\n    redirect = { %s }\n", match, redirect)
	}
	routes := redirect(`prefix = "/old/"`, `prefix_rewrite = "/new/", status = 302`) +
		redirect(`prefix = "/re/"`, `regex_rewrite = { pattern = '^/re/([0-9]+)$', substitution = '/items/\1' }, strip_query = true`) +
		redirect(`prefix = "/port/"`, `https_redirect = true, port = 8443`) +
		redirect(`prefix = "/strip/"`, `path = "/p", strip_query = true`) +
		redirect(`prefix = "/keep/"`, `path = "/kept"`) +
		redirect(`prefix = "/own/"`, `path = "/p?own=1"`)
	p := gwtest.Start(t, config(1, routes))
	base, host := "http://"+p.Addr("http"), p.Addr("http")
	hostOnly, _, _ := net.SplitHostPort(host)
	cl := newClient(nil)

	for _, tc := range []struct {
		name, path string
		status     int
		location   string
	}{
		{"prefix_rewrite keeps the rest and the query", "/old/a/b?x=1", 302, "http://" + host + "/new/a/b?x=1"},
		{"regex_rewrite with strip_query", "/re/42?x=1", 301, "http://" + host + "/items/42"},
		{"port replaces the authority's port", "/port/x?y", 301, "https://" + hostOnly + ":8443/port/x?y"},
		{"path with strip_query", "/strip/x?y=1", 301, "http://" + host + "/p"},
		{"path keeps the request's query", "/keep/x?y=1", 301, "http://" + host + "/kept?y=1"},
		{"a query in path replaces the request's", "/own/x?y=1", 301, "http://" + host + "/p?own=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := get(t, cl, base+tc.path)
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
				t.Errorf("GET %s: status %d, Location %q; want %d, %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
			}
		})
	}
}
