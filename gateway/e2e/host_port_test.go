package e2e

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestStripHostPort checks strip_matching_host_port (only the listener's
// own port goes) and strip_any_host_port (any port goes) on HTTP/1.1 and
// HTTP/2: the route is chosen on the stripped host (a virtual host for
// "example.com:<port>" no longer matches) and the upstream gets it; by
// default the host is forwarded as sent.
func TestStripHostPort(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s", r.Host)
	}))
	for _, tc := range []struct {
		name, opts string
		// want is the upstream's host for "example.com:<listener port>",
		// "example.com:9999" and "[::1]:9999"
		want [3]string
	}{
		{"default", "", [3]string{"example.com:%s", "example.com:9999", "[::1]:9999"}},
		{"matching", "strip_matching_host_port = true", [3]string{"example.com", "example.com:9999", "[::1]:9999"}},
		{"any", "strip_any_host_port = true", [3]string{"example.com", "example.com", "[::1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A virtual host for example.com:9999 answers itself: a host
			// stripped of that port reaches the catch-all and the upstream.
			p9999 := "\n  [[route_config.virtual_host]]\n  name = \"p9999\"\n  domains = [\"example.com:9999\"]\n" +
				"    [[route_config.virtual_host.route]]\n    match = { prefix = \"/\" }\n" +
				"    direct_response = { status = 200, body = \"host=example.com:9999\" }\n"
			cfg := h2Config(tc.opts, route(`prefix = "/"`, "up")+p9999, cluster("up", up.Addr))
			p := gwtest.Start(t, cfg)
			_, port, _ := net.SplitHostPort(p.Addr("http"))
			for _, c := range []struct {
				proto  string
				client *http.Client
			}{{"HTTP/1.1", newClient(nil)}, {"HTTP/2", h2cClient(nil)}} {
				for i, host := range []string{"example.com:" + port, "example.com:9999", "[::1]:9999"} {
					want := tc.want[i]
					if i == 0 && tc.name == "default" {
						want = fmt.Sprintf(want, port)
					}
					resp, body := get(t, c.client, "http://"+p.Addr("http")+"/", "host", host)
					fromVH := host == "example.com:9999" && resp.Header.Get("content-type") == "text/plain"
					if resp.StatusCode != 200 || string(body) != "host="+want || fromVH != (want == "example.com:9999") {
						t.Errorf("%s %s host %s: %d %q, want host=%s", tc.name, c.proto, host, resp.StatusCode, body, want)
					}
				}
			}
		})
	}
}
