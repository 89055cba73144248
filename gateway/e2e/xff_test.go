package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// xffEcho is an upstream that answers with the forwarding headers it got.
func xffEcho(t *testing.T) *testutil.Server {
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s|xfp=%s|internal=%s|external=%s|tags=%s",
			strings.Join(r.Header.Values("x-forwarded-for"), ";"), r.Header.Get("x-forwarded-proto"),
			r.Header.Get("x-envoy-internal"), r.Header.Get("x-envoy-external-address"), r.Header.Get("x-envoy-ip-tags"))
	}))
}

// xffHCM is the manager's extra lines for the XFF tests: hcm options, an
// access log of the client and direct addresses by x-request-id, and an
// rbac filter denying remote_ip 198.51.100.0/24.
func xffHCM(opts, logPath string) string {
	return opts + fmt.Sprintf(`
    mark_internal_requests = true
    preserve_external_request_id = true
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      format = "%%REQ(X-REQUEST-ID)%% client=%%DOWNSTREAM_REMOTE_ADDRESS%% direct=%%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%% %%RESPONSE_CODE%%\n"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.rbac"
      [listener.filter_chain.filter.config.http_filter.config]
      action = "DENY"
        [[listener.filter_chain.filter.config.http_filter.config.policy]]
        name = "blocked"
        permissions = [{ any = true }]
        principals = [{ remote_ip = ["198.51.100.0/24"] }]
`, logPath)
}

// TestXFFNumTrustedHops checks xff_num_trusted_hops with use_remote_address
// as Envoy applies it: behind one trusted proxy the client is the last
// x-forwarded-for address the proxy sent (not the peer), and that address
// is what internal_address_config judges (x-envoy-internal or
// x-envoy-external-address, the internal-only x-envoy-* headers kept or
// dropped), what rbac's remote_ip matches and what the access log prints
// as %DOWNSTREAM_REMOTE_ADDRESS% (port 0), while the direct address stays
// the peer; the peer is still appended to x-forwarded-for, and the trusted
// proxy's x-forwarded-proto is kept. Without x-forwarded-for the client is
// the peer.
func TestXFFNumTrustedHops(t *testing.T) {
	up := xffEcho(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := h2Config(xffHCM("xff_num_trusted_hops = 1", logPath), route(`prefix = "/"`, "up"), cluster("up", up.Addr))
	p := gwtest.Start(t, cfg)
	c := newClient(nil)
	url := "http://" + p.Addr("http") + "/"
	for _, tc := range []struct {
		id, xff, xfp string
		status       int
		body         string
		client       string
	}{
		{"ext", "192.0.2.1, 203.0.113.9", "https", 200,
			"xff=192.0.2.1, 203.0.113.9, 127.0.0.1|xfp=https|internal=|external=203.0.113.9|tags=", "203.0.113.9:0"},
		{"int", "10.1.2.3", "", 200,
			"xff=10.1.2.3, 127.0.0.1|xfp=http|internal=true|external=|tags=3", "10.1.2.3:0"},
		{"blocked", "198.51.100.7", "", 403, "", "198.51.100.7:0"},
		{"garbage", "not-an-ip", "", 200,
			"xff=not-an-ip, 127.0.0.1|xfp=http|internal=true|external=|tags=3", "127.0.0.1:"},
		{"none", "", "", 200, "xff=127.0.0.1|xfp=http|internal=true|external=|tags=3", "127.0.0.1:"},
	} {
		hdr := []string{"x-request-id", tc.id, "x-envoy-ip-tags", "3"}
		if tc.xff != "" {
			hdr = append(hdr, "x-forwarded-for", tc.xff)
		}
		if tc.xfp != "" {
			hdr = append(hdr, "x-forwarded-proto", tc.xfp)
		}
		resp, body := get(t, c, url, hdr...)
		if resp.StatusCode != tc.status || (tc.body != "" && string(body) != tc.body) {
			t.Errorf("%s: %d %q; want %d %q", tc.id, resp.StatusCode, body, tc.status, tc.body)
		}
		waitLogLine(t, logPath, tc.id+" client="+tc.client, "direct=127.0.0.1 ")
	}
}

// TestSkipXFFAppendAndUseRemoteAddressOff checks skip_xff_append (the
// client's x-forwarded-for reaches the upstream as sent, none when it sent
// none, and the client is still the peer) and, without use_remote_address,
// Envoy's x-forwarded-for detection: the access log and rbac's remote_ip
// see the last x-forwarded-for address, or, with xff_num_trusted_hops = 1,
// the one before it.
func TestSkipXFFAppendAndUseRemoteAddressOff(t *testing.T) {
	up := xffEcho(t)
	for _, tc := range []struct {
		name, opts string
		checks     []struct{ id, xff, body, client string }
	}{
		{"skip_xff_append", "skip_xff_append = true", []struct{ id, xff, body, client string }{
			{"a", "192.0.2.1", "xff=192.0.2.1|xfp=http|internal=true|external=|tags=3", "127.0.0.1:"},
			{"b", "", "xff=|xfp=http|internal=true|external=|tags=3", "127.0.0.1:"},
		}},
		{"use_remote_address off", "use_remote_address = false", []struct{ id, xff, body, client string }{
			{"c", "192.0.2.1, 203.0.113.9", "", "203.0.113.9:0"},
			{"d", "192.0.2.1, 198.51.100.7", "403", "198.51.100.7:0"},
		}},
		{"use_remote_address off, one trusted hop", "use_remote_address = false\n    xff_num_trusted_hops = 1", []struct{ id, xff, body, client string }{
			{"e", "192.0.2.1, 203.0.113.9", "", "192.0.2.1:0"},
			{"f", "198.51.100.7, 203.0.113.9", "403", "198.51.100.7:0"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.log")
			p := gwtest.Start(t, h2Config(xffHCM(tc.opts, logPath), route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
			c := newClient(nil)
			for _, ck := range tc.checks {
				hdr := []string{"x-request-id", ck.id, "x-envoy-ip-tags", "3"}
				if ck.xff != "" {
					hdr = append(hdr, "x-forwarded-for", ck.xff)
				}
				resp, body := get(t, c, "http://"+p.Addr("http")+"/", hdr...)
				switch {
				case ck.body == "403":
					if resp.StatusCode != 403 {
						t.Errorf("%s: %d %q, want rbac's 403", ck.id, resp.StatusCode, body)
					}
				case resp.StatusCode != 200 || (ck.body != "" && string(body) != ck.body):
					t.Errorf("%s: %d %q; want 200 %q", ck.id, resp.StatusCode, body, ck.body)
				}
				waitLogLine(t, logPath, ck.id+" client="+ck.client, "direct=127.0.0.1 ")
			}
		})
	}
}
