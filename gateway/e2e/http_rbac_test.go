package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// rbacListener is a listener named name whose manager (stat_prefix
// prefix) logs "<code> <flags> <details> <path>" lines to logPath and runs
// rbacBody (the HTTP rbac filter's config table lines) before the router,
// on the route table "local".
func rbacListener(name, prefix, logPath, rbacBody string) string {
	return fmt.Sprintf(`
[[listener]]
name = %q
address = "127.0.0.1:0"
  [[listener.filter_chain]]
  name = "default"
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = %q
    route_config = "local"
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%RESPONSE_CODE%% %%RESPONSE_FLAGS%% %%RESPONSE_CODE_DETAILS%% %%REQ(:PATH)%%\n"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.rbac"
      [listener.filter_chain.filter.config.http_filter.config]
%s
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
`, name, prefix, logPath, rbacBody)
}

// rbacPolicies is an edge operator's ALLOW table: the admin API only from
// 127.0.0.2 (the client address after x-forwarded-for processing), reads
// of anything else from anyone, writes with a token.
const rbacPolicies = `
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "admin-from-office"
      permissions = [{ url_path = { prefix = "/admin" } }]
      principals = [{ remote_ip = ["127.0.0.2/32"] }]
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "reads"
      permissions = [{ and_rules = [{ methods = ["GET", "HEAD"] }, { not_rule = { url_path = { prefix = "/admin" } } }] }]
      principals = [{ any = true }]
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "writes-with-token"
      permissions = [{ header = { name = ":method", regex = "POST|PUT" } }]
      principals = [{ header = { name = "x-token", exact = "s3cret" } }]
`

// rbacRoutes sends everything to "up", and disables the filter on /open.
var rbacRoutes = `
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/open"`, "up", `disabled_filters = ["sluice.filters.http.rbac"]`) + route(`prefix = "/"`, "up")

// rbacClient returns an HTTP/1.1 or h2c client whose connections come
// from the local address src.
func rbacClient(h2 bool, src string) *http.Client {
	d := &net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	if h2 {
		return &http.Client{Timeout: ioTimeout, Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			}}}
	}
	return &http.Client{Timeout: ioTimeout, Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true}}
}

// rbacDo sends method path with the header pairs and returns the status
// and body.
func rbacDo(t *testing.T, c *http.Client, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, body := do(t, c, req)
	return resp.StatusCode, string(body)
}

// TestHTTPRBACAllowsAndDeniesByPathMethodHeaderAndAddress runs an ALLOW
// table over HTTP/1.1 and HTTP/2 (h2c): a request no policy allows gets
// Envoy's 403 "RBAC: access denied" without reaching the upstream, with the
// flag RBAC and the details in the access log; the admin path is allowed
// from 127.0.0.2 only, also when a client forges x-forwarded-for; writes
// need the token header; a route with the filter in disabled_filters lets
// everything through; the counters in /stats (JSON and Prometheus) say so.
func TestHTTPRBACAllowsAndDeniesByPathMethodHeaderAndAddress(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, "[server]\nworkers = 2\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		rbacListener("http", "ingress_http", logPath, rbacPolicies)+rbacRoutes+cluster("up", up.Addr))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")

	allowed, denied := 0, 0
	for _, proto := range []struct {
		name string
		h2   bool
	}{{"HTTP/1.1", false}, {"HTTP/2", true}} {
		t.Run(proto.name, func(t *testing.T) {
			office, other := rbacClient(proto.h2, "127.0.0.2"), rbacClient(proto.h2, "127.0.0.1")
			cases := []struct {
				what   string
				c      *http.Client
				method string
				path   string
				hdr    []string
				allow  bool
			}{
				{"read", other, "GET", "/public", nil, true},
				{"head", other, "HEAD", "/public", nil, true},
				{"delete matches no policy", other, "DELETE", "/public", nil, false},
				{"write with token", other, "POST", "/public", []string{"x-token", "s3cret"}, true},
				{"write with wrong token", other, "PUT", "/public", []string{"x-token", "guess"}, false},
				{"write without token", other, "POST", "/public", nil, false},
				{"admin from the office", office, "GET", "/admin/users", nil, true},
				{"admin delete from the office", office, "DELETE", "/admin/users", nil, true},
				{"admin from elsewhere", other, "GET", "/admin/users", nil, false},
				{"admin with a forged x-forwarded-for", other, "GET", "/admin/users", []string{"x-forwarded-for", "127.0.0.2"}, false},
				{"filter disabled on the route", other, "DELETE", "/open/x", nil, true},
			}
			for _, tc := range cases {
				before := up.RequestCount()
				code, body := rbacDo(t, tc.c, tc.method, base+tc.path, tc.hdr...)
				reached := up.RequestCount() - before
				switch {
				case tc.allow && (code != 200 || reached != 1):
					t.Errorf("%s: %s %s: status %d %q, upstream saw %d; want 200 from the upstream", tc.what, tc.method, tc.path, code, body, reached)
				case !tc.allow && (code != 403 || (tc.method != "HEAD" && body != "RBAC: access denied") || reached != 0):
					t.Errorf("%s: %s %s: status %d %q, upstream saw %d; want 403 %q and nothing upstream", tc.what, tc.method, tc.path, code, body, reached, "RBAC: access denied")
				}
				if tc.path == "/open/x" {
					continue // not counted: the filter did not run
				}
				if tc.allow {
					allowed++
				} else {
					denied++
				}
			}
		})
	}
	waitLogLine(t, logPath, "403 RBAC rbac_access_denied_matched_policy[none] /admin/users")
	st := adminCounters(t, admin)
	if a, d := st["http.ingress_http.rbac.allowed"], st["http.ingress_http.rbac.denied"]; a != float64(allowed) || d != float64(denied) {
		t.Errorf("rbac.allowed %v, rbac.denied %v; want %d and %d", a, d, allowed, denied)
	}
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fams, err := testutil.ParsePrometheusText(string(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	found := false
	for _, s := range fams["sluice_http_rbac_denied"] {
		found = found || s.Labels["http_conn_manager_prefix"] == "ingress_http" && s.Value == float64(denied)
	}
	if !found {
		t.Errorf("no sluice_http_rbac_denied{http_conn_manager_prefix=\"ingress_http\"} %d in %v", denied, fams["sluice_http_rbac_denied"])
	}
}

// TestHTTPRBACShadowCountsWithoutEnforcing: a shadow DENY table lets
// every request through and counts what it would have done under its
// stat_prefix, beside an enforcing DENY listener on the same routes.
func TestHTTPRBACShadowCountsWithoutEnforcing(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") }))
	dir := t.TempDir()
	table := func(shadow bool) string {
		return fmt.Sprintf(`      stat_prefix = "edge."
      action = "DENY"
      shadow = %v
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "no-debug"
      permissions = [{ url_path = { prefix = "/debug" } }, { header = { name = "x-debug", present = true } }]
      principals = [{ any = true }]
`, shadow)
	}
	p := gwtest.Start(t, "[server]\nworkers = 1\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		rbacListener("shadow", "shadow_http", filepath.Join(dir, "s.log"), table(true))+
		rbacListener("enforce", "enforce_http", filepath.Join(dir, "e.log"), table(false))+
		rbacRoutes+cluster("up", up.Addr))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	c := rbacClient(false, "127.0.0.1")
	for _, r := range []struct {
		path, hdr string
		deny      bool
	}{{"/debug/pprof", "", true}, {"/x", "x-debug", true}, {"/x", "", false}} {
		var hdr []string
		if r.hdr != "" {
			hdr = []string{r.hdr, "1"}
		}
		if code, body := rbacDo(t, c, "GET", "http://"+p.Addr("shadow")+r.path, hdr...); code != 200 || body != "up" {
			t.Errorf("shadow %s %v: status %d %q, want the upstream's 200", r.path, hdr, code, body)
		}
		want := 200
		if r.deny {
			want = 403
		}
		if code, _ := rbacDo(t, c, "GET", "http://"+p.Addr("enforce")+r.path, hdr...); code != want {
			t.Errorf("enforcing %s %v: status %d, want %d", r.path, hdr, code, want)
		}
	}
	st := adminCounters(t, admin)
	for name, want := range map[string]float64{
		"http.shadow_http.edge.rbac.shadow_denied": 2, "http.shadow_http.edge.rbac.shadow_allowed": 1,
		"http.shadow_http.edge.rbac.denied": 0, "http.shadow_http.edge.rbac.allowed": 0,
		"http.enforce_http.edge.rbac.denied": 2, "http.enforce_http.edge.rbac.allowed": 1,
		"http.enforce_http.edge.rbac.shadow_denied": 0,
	} {
		if got, ok := st[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
}

// TestHTTPRBACDenyByIPv4MappedRanges: a DENY table whose principals are
// written as IPv4-mapped IPv6 ranges (as for a dual-stack listener) denies
// the IPv4 clients they map: 127.0.0.3 on /a by remote_ip, all of
// 127.0.0.0/24 on /b by direct_remote_ip; other paths and clients pass.
func TestHTTPRBACDenyByIPv4MappedRanges(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") }))
	table := `      action = "DENY"
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "mapped-host"
      permissions = [{ url_path = { prefix = "/a" } }]
      principals = [{ remote_ip = ["::ffff:127.0.0.3"] }]
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "mapped-range"
      permissions = [{ url_path = { prefix = "/b" } }]
      principals = [{ direct_remote_ip = ["::ffff:127.0.0.0/120"] }]
`
	p := gwtest.Start(t, "[server]\nworkers = 1\n"+
		rbacListener("http", "ingress_http", filepath.Join(t.TempDir(), "a.log"), table)+rbacRoutes+cluster("up", up.Addr))
	base := "http://" + p.Addr("http")
	for _, h2 := range []bool{false, true} {
		for _, tc := range []struct {
			src, path string
			want      int
		}{
			{"127.0.0.3", "/a", 403}, {"127.0.0.3", "/b", 403}, {"127.0.0.3", "/c", 200},
			{"127.0.0.2", "/a", 200}, {"127.0.0.2", "/b", 403},
		} {
			if code, _ := rbacDo(t, rbacClient(h2, tc.src), "GET", base+tc.path); code != tc.want {
				t.Errorf("h2 %v, from %s %s: %d, want %d", h2, tc.src, tc.path, code, tc.want)
			}
		}
	}
}

// TestHTTPRBACAuthenticatedPrincipalOverMutualTLS: over HTTP/2 on mutual
// TLS, a policy on the client certificate's DNS SAN lets that client in,
// on a resumed session too, and answers 403 to a client with another
// certificate or none.
func TestHTTPRBACAuthenticatedPrincipalOverMutualTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey, _ := ca.Leaf(t, "127.0.0.1", "a.test")
	_, _, good := ca.Leaf(t, "client.test")
	_, _, bad := ca.Leaf(t, "intruder.test")
	var reached atomic.Int64
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	l := rbacListener("https", "ingress_https", filepath.Join(t.TempDir(), "a.log"), `
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "service-client"
      permissions = [{ any = true }]
      principals = [{ authenticated = { principal_name = { exact = "client.test" } } }]
`)
	l = strings.Replace(l, "  name = \"default\"\n", fmt.Sprintf("  name = \"default\"\n  [listener.filter_chain.tls]\n"+
		"  ca_file = %q\n  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n", ca.File, srvCert, srvKey), 1)
	p := gwtest.Start(t, "[server]\nworkers = 1\n"+l+rbacRoutes+cluster("up", up.Addr))
	for _, tc := range []struct {
		what  string
		certs []tls.Certificate
		want  int
	}{{"allowed client", []tls.Certificate{good}, 200}, {"other client", []tls.Certificate{bad}, 403}, {"no certificate", nil, 403}} {
		tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "a.test", Certificates: tc.certs,
			ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
		c := &http.Client{Timeout: ioTimeout, Transport: tr}
		for conn := range 2 { // the second connection may resume the session
			before := reached.Load()
			resp, _ := get(t, c, "https://"+p.Addr("https")+"/x")
			if resp.StatusCode != tc.want || resp.ProtoMajor != 2 {
				t.Errorf("%s, connection %d (resumed %v): %s %d, want HTTP/2 %d", tc.what, conn, resp.TLS.DidResume, resp.Proto, resp.StatusCode, tc.want)
			}
			if n := reached.Load() - before; (n == 1) != (tc.want == 200) {
				t.Errorf("%s, connection %d: the upstream saw %d requests", tc.what, conn, n)
			}
			tr.CloseIdleConnections()
		}
	}
}

// TestHTTPRBACAddressPrincipalsAfterProxyProtocolAndForwardedFor: behind
// the PROXY protocol, direct_remote_ip matches the socket's peer,
// source_ip and remote_ip the client the header announced; on a manager
// without use_remote_address, remote_ip matches the last x-forwarded-for
// address the previous proxy appended, and the peer without one.
func TestHTTPRBACAddressPrincipalsAfterProxyProtocolAndForwardedFor(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") }))
	policy := func(name, path, principal string) string {
		return fmt.Sprintf(`
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = %q
      permissions = [{ url_path = { prefix = %q } }]
      principals = [%s]
`, name, path, principal)
	}
	dir := t.TempDir()
	lb := rbacListener("lb", "lb", filepath.Join(dir, "lb.log"),
		policy("direct", "/direct", `{ direct_remote_ip = ["127.0.0.1"] }`)+
			policy("not-direct", "/announced-as-direct", `{ direct_remote_ip = ["203.0.113.7"] }`)+
			policy("source", "/source", `{ source_ip = ["203.0.113.0/24"] }`)+
			policy("not-source", "/peer-as-source", `{ source_ip = ["127.0.0.1"] }`)+
			policy("remote", "/remote", `{ remote_ip = ["203.0.113.7"] }`))
	lb = strings.Replace(lb, "  [[listener.filter_chain]]", listenerFilter("proxy_protocol", "")+"  [[listener.filter_chain]]", 1)
	inner := rbacListener("inner", "inner", filepath.Join(dir, "inner.log"), policy("remote", "/remote", `{ remote_ip = ["198.51.100.1"] }`))
	inner = strings.Replace(inner, `route_config = "local"`, "route_config = \"local\"\n    use_remote_address = false", 1)
	p := gwtest.Start(t, "[server]\nworkers = 1\n"+lb+inner+rbacRoutes+cluster("up", up.Addr))

	for _, tc := range []struct {
		path string
		want int
	}{{"/direct", 200}, {"/announced-as-direct", 403}, {"/source", 200}, {"/peer-as-source", 403}, {"/remote", 200}} {
		c := dial(t, p.Addr("lb"))
		fmt.Fprintf(c, "PROXY TCP4 203.0.113.7 127.0.0.1 40001 80\r\nGET %s HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\nConnection: close\r\n\r\n", tc.path)
		if resp, body := readResponse(t, bufio.NewReader(c), "GET"); resp.StatusCode != tc.want {
			t.Errorf("behind PROXY, %s: status %d %q, want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
	c := rbacClient(false, "127.0.0.1")
	for _, tc := range []struct {
		xff  string
		want int
	}{{"198.51.100.1", 200}, {"198.51.100.1, 10.0.0.1", 403}, {"10.0.0.1, 198.51.100.1", 200}, {"", 403}} {
		var hdr []string
		if tc.xff != "" {
			hdr = []string{"x-forwarded-for", tc.xff}
		}
		if code, body := rbacDo(t, c, "GET", "http://"+p.Addr("inner")+"/remote", hdr...); code != tc.want {
			t.Errorf("without use_remote_address, x-forwarded-for %q: status %d %q, want %d", tc.xff, code, body, tc.want)
		}
	}
}

// TestHTTPRBACDeniesOverHTTP3: the filter runs on HTTP/3 streams too.
func TestHTTPRBACDeniesOverHTTP3(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") }))
	cfg := strings.ReplaceAll(h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr), `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"`, `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.rbac"
      [listener.filter_chain.filter.config.http_filter.config]
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "not-admin"
      permissions = [{ not_rule = { url_path = { prefix = "/admin" } } }]
      principals = [{ any = true }]
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"`)
	p := gwtest.Start(t, cfg)
	c := h3Client(t, ca)
	c.Timeout = ioTimeout
	for _, tc := range []struct {
		path string
		code int
		body string
	}{{"/x", 200, "up"}, {"/admin", 403, "RBAC: access denied"}} {
		before := up.RequestCount()
		resp, err := c.Get("https://" + p.Addr("h3") + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(body) != tc.body || resp.ProtoMajor != 3 {
			t.Errorf("%s: %s %d %q, want HTTP/3 %d %q", tc.path, resp.Proto, resp.StatusCode, body, tc.code, tc.body)
		}
		if n := up.RequestCount() - before; (n == 1) != (tc.code == 200) {
			t.Errorf("%s: the upstream saw %d requests", tc.path, n)
		}
	}
}
