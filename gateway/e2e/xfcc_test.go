package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/internal/xfcc"
)

// xfccConfig has one TLS listener per forward_client_cert_details mode
// (named after it, lowercase), each asking for (not requiring) a client
// certificate from ca, all routing to up.
func xfccConfig(caFile, cert, key, up string, modes []string, extra string) string {
	var b strings.Builder
	b.WriteString("[server]\nworkers = 1\n")
	for _, m := range modes {
		fmt.Fprintf(&b, `
[[listener]]
name = %q
address = "127.0.0.1:0"
  [[listener.filter_chain]]
  [listener.filter_chain.tls]
  ca_file = %q
    [[listener.filter_chain.tls.certificate]]
    cert_file = %q
    key_file = %q
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = %q
    route_config = "local"
    forward_client_cert_details = %q
    %s
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
`, strings.ToLower(m), caFile, cert, key, strings.ToLower(m), m, extra)
	}
	b.WriteString(`
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
`)
	b.WriteString(cluster("up", up))
	return b.String()
}

// TestForwardClientCertDetails checks each forward_client_cert_details
// mode as Envoy's mutateXfccRequestHeader applies it, with and without a
// client certificate, over HTTP/1.1 and HTTP/2: SANITIZE removes what the
// client sent; FORWARD_ONLY keeps it from an mTLS client only;
// APPEND_FORWARD appends sluice's element (By= the server certificate's
// URI SAN, Hash=, and the set_current_client_cert_details fields) after a
// ','; SANITIZE_SET replaces the value with it; ALWAYS_FORWARD_ONLY keeps
// whatever came, certificate or not.
func TestForwardClientCertDetails(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey, _ := ca.Leaf(t, "sluice.test", "spiffe://td/sluice")
	_, _, client := ca.Leaf(t, "client.test", "spiffe://td/client")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d:%s", len(r.Header.Values("x-forwarded-client-cert")), strings.Join(r.Header.Values("x-forwarded-client-cert"), "|"))
	}))
	modes := []string{"SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET", "ALWAYS_FORWARD_ONLY"}
	p := gwtest.Start(t, xfccConfig(ca.File, srvCert, srvKey, up.Addr, modes,
		"set_current_client_cert_details = { subject = true, uri = true, dns = true }"))
	sum := sha256.Sum256(client.Leaf.Raw)
	mine := "By=spiffe://td/sluice;Hash=" + hex.EncodeToString(sum[:]) +
		`;Subject="CN=client.test";URI=spiffe://td/client;DNS=client.test`
	const sent = `Hash=aa;URI=spiffe://evil`
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		for _, withCert := range []bool{true, false} {
			tc := &tls.Config{ServerName: "sluice.test", RootCAs: ca.Pool}
			if withCert {
				tc.Certificates = []tls.Certificate{client}
			}
			tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: proto == "HTTP/2.0"}
			if proto == "HTTP/1.1" {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			c := &http.Client{Timeout: ioTimeout, Transport: tr}
			for _, m := range modes {
				want := map[string]string{
					"SANITIZE":            "0:",
					"FORWARD_ONLY":        "0:",
					"APPEND_FORWARD":      "0:",
					"SANITIZE_SET":        "0:",
					"ALWAYS_FORWARD_ONLY": "2:" + sent + "|Hash=bb",
				}[m]
				if withCert {
					want = map[string]string{
						"SANITIZE":            "0:",
						"FORWARD_ONLY":        "2:" + sent + "|Hash=bb",
						"APPEND_FORWARD":      "1:" + sent + ",Hash=bb," + mine,
						"SANITIZE_SET":        "1:" + mine,
						"ALWAYS_FORWARD_ONLY": "2:" + sent + "|Hash=bb",
					}[m]
				}
				req, _ := http.NewRequest("GET", "https://"+p.Addr(strings.ToLower(m))+"/", nil)
				req.Header.Add("x-forwarded-client-cert", sent)
				req.Header.Add("x-forwarded-client-cert", "Hash=bb")
				resp, body := do(t, c, req)
				if resp.Proto != proto {
					t.Fatalf("%s: answered over %s", proto, resp.Proto)
				}
				if string(body) != want {
					t.Errorf("%s %s, client certificate %v: upstream got\n %s\nwant\n %s", proto, m, withCert, body, want)
				}
			}
			c.CloseIdleConnections()
		}
	}
	// What sluice adds parses as XFCC.
	els, err := xfcc.Parse(mine)
	if err != nil || len(els) != 1 || els[0].Get("subject")[0] != "CN=client.test" {
		t.Errorf("sluice's element %q parses to %q, %v", mine, els, err)
	}
}
