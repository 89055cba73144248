package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestServerHeaderAndVia checks server_name, server_header_transformation
// and via on HTTP/1.1 and HTTP/2, for a proxied response with and without
// an upstream server header and for a local reply (no route): by default
// sluice adds no server header and passes the upstream's; server_name
// alone overwrites (OVERWRITE, Envoy's default); APPEND_IF_ABSENT keeps the
// upstream's and fills in "sluice"; PASS_THROUGH never adds one; via is
// appended after ", " to the request's and the response's via.
func TestServerHeaderAndVia(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/with" {
			w.Header().Set("server", "nginx")
		}
		w.Header().Set("via", "1.1 origin")
		fmt.Fprintf(w, "via=%s", r.Header.Get("via"))
	}))
	routes := route(`prefix = "/with"`, "up") + route(`prefix = "/without"`, "up")
	for _, tc := range []struct {
		name, opts             string
		with, without, noRoute string
	}{
		{"default", ``, "nginx", "", ""},
		{"server_name", `server_name = "edge-1"`, "edge-1", "edge-1", "edge-1"},
		{"append_if_absent", `server_header_transformation = "APPEND_IF_ABSENT"`, "nginx", "sluice", "sluice"},
		{"pass_through", "server_name = \"edge-1\"\n    server_header_transformation = \"PASS_THROUGH\"", "nginx", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gwtest.Start(t, h2Config(tc.opts+"\n    via = \"1.1 sluice-edge\"", routes, cluster("up", up.Addr)))
			for _, c := range []struct {
				proto  string
				client *http.Client
			}{{"HTTP/1.1", newClient(nil)}, {"HTTP/2", h2cClient(nil)}} {
				base := "http://" + p.Addr("http")
				for _, q := range []struct{ path, server string }{{"/with", tc.with}, {"/without", tc.without}, {"/nowhere", tc.noRoute}} {
					resp, body := get(t, c.client, base+q.path, "via", "1.0 fred")
					got := resp.Header.Values("server")
					if (q.server == "" && len(got) != 0) || (q.server != "" && (len(got) != 1 || got[0] != q.server)) {
						t.Errorf("%s %s: server %q, want %q", c.proto, q.path, got, q.server)
					}
					wantVia := "1.1 origin, 1.1 sluice-edge"
					if q.path == "/nowhere" {
						wantVia = "1.1 sluice-edge"
					} else if string(body) != "via=1.0 fred, 1.1 sluice-edge" {
						t.Errorf("%s %s: upstream got %q, want via=1.0 fred, 1.1 sluice-edge", c.proto, q.path, body)
					}
					if v := resp.Header.Values("via"); len(v) != 1 || v[0] != wantVia {
						t.Errorf("%s %s: response via %q, want %q", c.proto, q.path, v, wantVia)
					}
				}
			}
		})
	}
}
