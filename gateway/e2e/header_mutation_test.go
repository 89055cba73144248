package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// headerMutationConfig has mutations at all three levels: the route table
// adds HSTS to every response, the virtual host tags requests, the routes
// add, overwrite and remove request and response headers.
const headerMutationConfig = `
[server]
workers = 1

[[listener]]
name = "http"
address = "127.0.0.1:0"

  [[listener.filter_chain]]
  name = "default"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"
response_headers_to_add = [
  { key = "Strict-Transport-Security", value = "max-age=31536000", append_action = "overwrite_if_exists_or_add" },
]
request_headers_to_remove = ["x-table-removes"]

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
  request_headers_to_add = [
    { key = "x-order", value = "vhost", append_action = "overwrite_if_exists" },
    { key = "x-vhost", value = "all" },
  ]

    [[route_config.virtual_host.route]]
    match = { prefix = "/h1/" }
    cluster = "h1"
    request_headers_to_add = [
      { key = "x-client", value = "%%DOWNSTREAM_REMOTE_ADDRESS%%" },
      { key = "x-literal", value = "100%%%% sure" },
      { key = "x-absent-only", value = "route", append_action = "add_if_absent" },
      { key = "x-overwrite", value = "route", append_action = "overwrite_if_exists" },
      { key = "x-overwrite-missing", value = "route", append_action = "overwrite_if_exists" },
      { key = "x-append", value = "route" },
      { key = "x-order", value = "route" },
      { key = "x-table-removes", value = "route" },
      { key = "x-from-missing", value = "%%REQ(x-nothing)%%" },
    ]
    request_headers_to_remove = ["x-secret"]
    response_headers_to_add = [
      { key = "x-tag", value = "%%REQ(x-tag)%%-%%RESPONSE_CODE%%" },
      { key = "x-empty", value = "%%REQ(x-nothing)%%" },
      { key = "x-kept-empty", value = "%%REQ(x-nothing)%%", keep_empty_value = true },
    ]
    response_headers_to_remove = ["x-powered-by"]

    [[route_config.virtual_host.route]]
    match = { prefix = "/h2/" }
    cluster = "h2"
    response_headers_to_remove = ["x-powered-by"]

    [[route_config.virtual_host.route]]
    match = { path = "/direct" }
    direct_response = { status = 200, body = "ok" }
    response_headers_to_add = [{ key = "x-direct", value = "yes" }]

    [[route_config.virtual_host.route]]
    match = { prefix = "/dead/" }
    cluster = "dead"

[[cluster]]
name = "h1"
endpoints = ["%s"]

[[cluster]]
name = "h2"
endpoints = ["%s"]
protocol = "http2"

[[cluster]]
name = "dead"
endpoints = ["%s"]
connect_timeout = "1s"
`

// TestRouteHeaderMutations checks request_headers_to_add/remove and
// response_headers_to_add/remove at the route, virtual host and route
// table levels, their order, append actions, formatted values, and that
// direct responses and the router's error replies carry the response
// headers too, over HTTP/1.1 and HTTP/2 downstream and upstream.
func TestRouteHeaderMutations(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Powered-By", "php")
		w.Header().Set("Strict-Transport-Security", "max-age=1")
		_ = json.NewEncoder(w).Encode(r.Header)
	})
	up := testutil.Upstream(t, echo)
	h2addr, _ := h2Upstream(t, echo, false)
	p := gwtest.Start(t, fmt.Sprintf(headerMutationConfig, up.Addr, h2addr, testutil.DeadAddr(t)))
	base := "http://" + p.Addr("http")

	for _, client := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
		t.Run(client.name, func(t *testing.T) {
			c := client.c
			checkResponse := func(t *testing.T, resp *http.Response) {
				t.Helper()
				if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=31536000" {
					t.Errorf("strict-transport-security %q, want the route table's one value", got)
				}
				if got := resp.Header.Get("X-Powered-By"); got != "" && resp.StatusCode == 200 && resp.Request.URL.Path != "/direct" {
					t.Errorf("x-powered-by %q reached the client; the route removes it", got)
				}
			}

			t.Run("request headers", func(t *testing.T) {
				resp, body := get(t, c, base+"/h1/x", "X-Absent-Only", "client", "X-Overwrite", "client",
					"X-Append", "client", "X-Secret", "s3cret", "X-Table-Removes", "client", "X-Tag", "t1")
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, body %q", resp.StatusCode, body)
				}
				checkResponse(t, resp)
				var seen http.Header
				if err := json.Unmarshal(body, &seen); err != nil {
					t.Fatalf("upstream's echo %q: %v", body, err)
				}
				host, _, err := net.SplitHostPort(seen.Get("X-Client"))
				if err != nil || host != "127.0.0.1" {
					t.Errorf("x-client %q, want the client's address (%%DOWNSTREAM_REMOTE_ADDRESS%%)", seen.Get("X-Client"))
				}
				want := map[string][]string{
					"X-Literal":           {"100% sure"},
					"X-Absent-Only":       {"client"},
					"X-Overwrite":         {"route"},
					"X-Overwrite-Missing": nil,
					"X-Append":            {"client", "route"},
					"X-Order":             {"vhost"}, // the route adds, then its virtual host overwrites
					"X-Vhost":             {"all"},
					"X-Secret":            nil,
					"X-Table-Removes":     nil, // the route table's removal runs last
					"X-From-Missing":      nil, // an empty value is not added
				}
				for name, w := range want {
					if got := seen.Values(name); strings.Join(got, "|") != strings.Join(w, "|") {
						t.Errorf("upstream saw %s = %q, want %q", name, got, w)
					}
				}
				if got := resp.Header.Get("X-Tag"); got != "t1-200" {
					t.Errorf("response x-tag %q, want \"t1-200\" (%%REQ(x-tag)%%-%%RESPONSE_CODE%%)", got)
				}
				if _, ok := resp.Header["X-Empty"]; ok {
					t.Errorf("x-empty added with an empty value")
				}
				if got, ok := resp.Header["X-Kept-Empty"]; !ok || len(got) != 1 || got[0] != "" {
					t.Errorf("x-kept-empty %q (present %v), want one empty value (keep_empty_value)", got, ok)
				}
			})
			t.Run("http2 upstream", func(t *testing.T) {
				resp, body := get(t, c, base+"/h2/x")
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, body %q", resp.StatusCode, body)
				}
				checkResponse(t, resp)
				var seen http.Header
				if err := json.Unmarshal(body, &seen); err != nil {
					t.Fatalf("upstream's echo %q: %v", body, err)
				}
				if got := seen.Get("X-Vhost"); got != "all" {
					t.Errorf("http2 upstream saw x-vhost %q, want \"all\"", got)
				}
			})
			t.Run("direct response", func(t *testing.T) {
				resp, _ := get(t, c, base+"/direct")
				checkResponse(t, resp)
				if got := resp.Header.Get("X-Direct"); got != "yes" {
					t.Errorf("x-direct %q, want \"yes\"", got)
				}
			})
			t.Run("router error reply", func(t *testing.T) {
				resp, body := get(t, c, base+"/dead/x")
				if resp.StatusCode != 503 {
					t.Fatalf("status %d, body %q; want 503", resp.StatusCode, body)
				}
				checkResponse(t, resp)
			})
			t.Run("no route", func(t *testing.T) {
				resp, _ := get(t, c, base+"/nowhere")
				if resp.StatusCode != 404 {
					t.Fatalf("status %d, want 404", resp.StatusCode)
				}
				if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
					t.Errorf("a request without a route got strict-transport-security %q; Envoy adds a route table's headers only to routed requests", got)
				}
			})
		})
	}
}
