package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// normListener is a listener named name whose manager (stat_prefix name)
// has the path options opts (TOML lines of its config table), logs
// "<code> <details> <path>" lines to logPath, and runs an RBAC table that
// allows every path but those under /admin, then the router, on the route
// table "local" (normRoutes).
func normListener(name, logPath, opts string) string {
	return fmt.Sprintf(`
[[listener]]
name = %[1]q
address = "127.0.0.1:0"
  [[listener.filter_chain]]
  name = "default"
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = %[1]q
    route_config = "local"
%[3]s
      [[listener.filter_chain.filter.config.access_log]]
      path = %[2]q
      format = "%%RESPONSE_CODE%% %%RESPONSE_CODE_DETAILS%% %%REQ(:PATH)%%\n"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.rbac"
      [listener.filter_chain.filter.config.http_filter.config]
      [[listener.filter_chain.filter.config.http_filter.config.policy]]
      name = "all-but-admin"
      permissions = [{ not_rule = { url_path = { prefix = "/admin" } } }]
      principals = [{ any = true }]
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
`, name, logPath, opts)
}

// normRoutes sends /private to the cluster "priv", the rest to "up".
var normRoutes = `
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/private"`, "priv") + route(`prefix = "/"`, "up")

// normResult is what a client got for a request target.
type normResult struct {
	status   int
	body     string
	location string
	closed   bool // HTTP/1.1: the connection closed after the response
}

// normH1 sends GET target over a new raw HTTP/1.1 connection to addr,
// with the extra header lines hdr, and reads the response; for a 4xx it
// reads on after a 400 to see whether the connection closes.
func normH1(t *testing.T, addr, target string, hdr ...string) normResult {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	req := "GET " + target + " HTTP/1.1\r\nHost: example.com\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	br := bufio.NewReader(c)
	resp, body := readResponse(t, br, "GET")
	r := normResult{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location")}
	if resp.StatusCode == 400 {
		assertClosed(t, c, br)
		r.closed = true
	}
	return r
}

// normH2 sends GET target over h2c (prior knowledge) with client c, the
// header pairs hdr, and redirects not followed.
func normH2(t *testing.T, c *http.Client, addr, target string, hdr ...string) normResult {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: addr}
	if strings.HasPrefix(target, "//") {
		u.Path = target // Opaque "//…" would read as an authority
	} else {
		u.Opaque = target // sent as it is
	}
	req := &http.Request{Method: "GET", URL: u, Host: "example.com", Header: http.Header{}}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, body := do(t, c, req)
	return normResult{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location")}
}

// TestPathNormalization runs one proxy with a listener per setting, over
// HTTP/1.1 (raw TCP) and HTTP/2 (h2c): with the defaults (normalize_path
// and merge_slashes on) /a/../private/x, /%70rivate/x, //private//x and
// their kind are routed as /private/x and the upstream sees that path, and
// no such form of /admin gets past an RBAC rule on prefix "/admin"; a
// malformed escape or an encoded NUL is answered 400 (the HTTP/1.1
// connection closes) and reaches no upstream; each
// path_with_escaped_slashes_action does what it says to %2F and %5C;
// with both options off the path goes through untouched. The access log
// prints the normalized path, and the counters count the refusals and
// redirects.
func TestPathNormalization(t *testing.T) {
	echo := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.RequestURI)
		})
	}
	priv, up := testutil.Upstream(t, echo("priv")), testutil.Upstream(t, echo("up"))
	dir := t.TempDir()
	edgeLog := filepath.Join(dir, "edge.log")
	p := gwtest.Start(t, "[server]\nworkers = 1\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		normListener("edge", edgeLog, "")+
		normListener("off", filepath.Join(dir, "off.log"), "    normalize_path = false\n    merge_slashes = false")+
		normListener("reject", filepath.Join(dir, "reject.log"), `    path_with_escaped_slashes_action = "REJECT_REQUEST"`)+
		normListener("redirect", filepath.Join(dir, "redirect.log"), `    path_with_escaped_slashes_action = "UNESCAPE_AND_REDIRECT"`)+
		normListener("forward", filepath.Join(dir, "forward.log"), `    path_with_escaped_slashes_action = "UNESCAPE_AND_FORWARD"`)+
		normRoutes+cluster("priv", priv.Addr)+cluster("up", up.Addr))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	type tc struct {
		listener, target string
		hdr              []string // header pairs
		status           int
		body             string // the upstream's echo; "" for a local reply
		location         string
	}
	cases := []tc{
		{"edge", "/private/x", nil, 200, "priv /private/x", ""},
		{"edge", "/a/../private/x", nil, 200, "priv /private/x", ""},
		{"edge", "/%70rivate/x", nil, 200, "priv /private/x", ""},
		{"edge", "//private//x", nil, 200, "priv /private/x", ""},
		{"edge", "/./private/./x", nil, 200, "priv /private/x", ""},
		{"edge", "/../../private/y/..", nil, 200, "priv /private/", ""},
		{"edge", "/private/x?q=/../a%2F//b", nil, 200, "priv /private/x?q=/../a%2F//b", ""},
		{"edge", "/a/../private/logged", nil, 200, "priv /private/logged", ""},
		{"edge", "/x%2F..%2Fprivate/y", nil, 200, "up /x%2F..%2Fprivate/y", ""}, // KEEP_UNCHANGED
		{"edge", "/admin", nil, 403, "", ""},
		{"edge", "/a/../admin", nil, 403, "", ""},
		{"edge", "/%61dmin", nil, 403, "", ""},
		{"edge", "//admin", nil, 403, "", ""},
		{"edge", "/./admin/users", nil, 403, "", ""},
		{"edge", "/x/..;p=1/admin", nil, 403, "", ""},
		{"edge", "/%2e%2E/%61%64%6d%69%6e", nil, 403, "", ""},
		{"edge", "/a\\..\\admin", nil, 403, "", ""},
		{"edge", "/a%zz", nil, 400, "", ""},
		{"edge", "/private/%4", nil, 400, "", ""},
		{"edge", "/private/a%00b", nil, 400, "", ""},
		{"off", "/a/../private/x", nil, 200, "up /a/../private/x", ""},
		{"off", "//private//x", nil, 200, "up //private//x", ""},
		{"reject", "/x%2F..%2Fprivate/y", nil, 400, "", ""},
		{"reject", "/private/a%5cb", nil, 400, "", ""},
		{"reject", "/private/x?a=%2F", nil, 200, "priv /private/x?a=%2F", ""},
		{"redirect", "/x%2F..%2Fprivate/y?q=%2F", nil, 307, "", "/private/y?q=%2F"},
		// gRPC clients do not follow redirects: Envoy's 400, which a gRPC
		// client gets as a trailers-only 200 (grpc-status 13).
		{"redirect", "/x%2F..%2Fprivate/y", []string{"content-type", "application/grpc"}, 200, "", ""},
		{"redirect", "/x%2F..%2Fprivate/y", []string{"content-type", "application/grpc+proto"}, 200, "", ""},
		// A gRPC-Web client is a browser, which follows the redirect; its
		// content-type is not gRPC's (nor is one that merely starts so).
		{"redirect", "/x%2F..%2Fprivate/y", []string{"content-type", "application/grpc-web+proto"}, 307, "", "/private/y"},
		{"redirect", "/x%2F..%2Fprivate/y", []string{"content-type", "application/grpcx"}, 307, "", "/private/y"},
		{"forward", "/x%2F..%2Fprivate/y", nil, 200, "priv /private/y", ""},
		{"forward", "/x%5C..%5Cprivate/y", nil, 200, "priv /private/y", ""},
	}
	h2c := h2cClient(nil)
	h2c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	rejected, redirected := map[string]int{}, map[string]int{}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			for _, c := range cases {
				before := len(priv.Targets()) + len(up.Targets())
				addr := p.Addr(c.listener)
				var r normResult
				if proto == "HTTP/1.1" {
					var hdr []string
					for i := 0; i+1 < len(c.hdr); i += 2 {
						hdr = append(hdr, c.hdr[i]+": "+c.hdr[i+1])
					}
					r = normH1(t, addr, c.target, hdr...)
				} else {
					r = normH2(t, h2c, addr, c.target, c.hdr...)
				}
				after := len(priv.Targets()) + len(up.Targets())
				what := fmt.Sprintf("%s %s", c.listener, c.target)
				switch {
				case r.status != c.status:
					t.Errorf("%s: status %d (%q), want %d", what, r.status, r.body, c.status)
				case c.body != "" && r.body != c.body:
					t.Errorf("%s: upstream saw %q, want %q", what, r.body, c.body)
				case c.body == "" && after != before:
					t.Errorf("%s: answered %d but an upstream saw it: %v %v", what, r.status, priv.Targets(), up.Targets())
				case r.location != c.location:
					t.Errorf("%s: location %q, want %q", what, r.location, c.location)
				case proto == "HTTP/1.1" && c.status == 400 && !r.closed:
					t.Errorf("%s: connection not closed after 400", what)
				}
				if c.status == 400 || c.status == 200 && c.body == "" {
					rejected[c.listener]++ // refused (a gRPC client's 400 is a 200)
				}
				if c.status == 307 {
					redirected[c.listener]++
				}
			}
		})
	}
	waitLogLine(t, edgeLog, "200 - /private/logged")
	waitLogLine(t, edgeLog, "400 path_normalization_failed /a%zz")
	st := adminCounters(t, admin)
	for _, l := range []string{"edge", "reject", "redirect", "forward"} {
		if got := st["http."+l+".downstream_rq_failed_path_normalization"]; got != float64(rejected[l]) {
			t.Errorf("http.%s.downstream_rq_failed_path_normalization = %v, want %d", l, got, rejected[l])
		}
		if got := st["http."+l+".downstream_rq_redirected_with_normalized_path"]; got != float64(redirected[l]) {
			t.Errorf("http.%s.downstream_rq_redirected_with_normalized_path = %v, want %d", l, got, redirected[l])
		}
	}
}

// TestPathNormalizationOverHTTP3: HTTP/3 streams get the same
// normalization before routing and RBAC: the upstream sees /x/y for
// /a/../x//y, RBAC on prefix "/admin" denies /%61dmin and //admin, and an
// encoded NUL is answered 400 without reaching the upstream.
func TestPathNormalizationOverHTTP3(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "up "+r.RequestURI)
	}))
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
		target string
		code   int
		body   string
	}{
		{"/a/../x//y", 200, "up /x/y"},
		{"/%61dmin", 403, "RBAC: access denied"},
		{"//admin", 403, "RBAC: access denied"},
		{"/a%00b", 400, ""}, // (quic-go's server refuses "%zz" itself: H3_MESSAGE_ERROR)
	} {
		before := up.RequestCount()
		u := &url.URL{Scheme: "https", Host: p.Addr("h3")}
		if strings.HasPrefix(tc.target, "//") {
			u.Path = tc.target
		} else {
			u.Opaque = tc.target
		}
		resp, body := do(t, c, &http.Request{Method: "GET", URL: u, Host: "h3.test", Header: http.Header{}})
		if resp.StatusCode != tc.code || tc.body != "" && string(body) != tc.body || resp.ProtoMajor != 3 {
			t.Errorf("%s: %s %d %q, want HTTP/3 %d %q", tc.target, resp.Proto, resp.StatusCode, body, tc.code, tc.body)
		}
		if n := up.RequestCount() - before; (n == 1) != (tc.code == 200) {
			t.Errorf("%s: the upstream saw %d requests", tc.target, n)
		}
	}
}
