package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// tlsListenerConfig is one TLS listener "https" whose chain terminates TLS
// with the given [listener.filter_chain.tls] body, routing everything to
// cluster "up" (given by clusterBlock).
func tlsListenerConfig(tlsBody, clusterBlock string) string {
	return fmt.Sprintf(`
[server]
workers = 2

[[listener]]
name = "https"
address = "127.0.0.1:0"
  [[listener.filter_chain]]
  name = "tls"
  [listener.filter_chain.tls]
%s
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_https"
    route_config = "local"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
%s
`, tlsBody, clusterBlock)
}

func tlsGet(t *testing.T, addr string, cfg *tls.Config) (*http.Response, string, error) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func TestTLSTerminationPicksCertificateBySNI(t *testing.T) {
	ca := testutil.NewCA(t)
	aCert, aKey, _ := ca.Leaf(t, "a.test")
	bCert, bKey, _ := ca.Leaf(t, "b.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s", r.Header.Get("x-forwarded-proto"))
	}))
	p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf(`
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
`, aCert, aKey, bCert, bKey), cluster("up", up.Addr)))
	for _, sni := range []string{"a.test", "b.test"} {
		resp, body, err := tlsGet(t, p.Addr("https"), &tls.Config{ServerName: sni, RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatalf("SNI %s: %v", sni, err)
		}
		if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != sni {
			t.Fatalf("SNI %s got the certificate of %s", sni, got)
		}
		if resp.StatusCode != 200 || body != "proto=https" {
			t.Fatalf("SNI %s: %d %q, want 200 with x-forwarded-proto https", sni, resp.StatusCode, body)
		}
		if resp.TLS.NegotiatedProtocol != "http/1.1" {
			t.Fatalf("ALPN %q, want http/1.1", resp.TLS.NegotiatedProtocol)
		}
	}
}

func TestMutualTLSRequiresAClientCertificateFromTheCA(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey, _ := ca.Leaf(t, "127.0.0.1")
	_, _, client := ca.Leaf(t, "client.test")
	_, _, wrongSAN := ca.Leaf(t, "intruder.test")
	other := testutil.NewCA(t)
	_, _, stranger := other.Leaf(t, "client.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf(`
  require_client_certificate = true
  ca_file = %q
  match_subject_alt_names = ["client.test"]
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
`, ca.File, srvCert, srvKey), cluster("up", up.Addr)))
	addr := p.Addr("https")
	if _, _, err := tlsGet(t, addr, &tls.Config{RootCAs: ca.Pool}); err == nil {
		t.Fatal("a client without a certificate got through")
	}
	if _, _, err := tlsGet(t, addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{stranger}}); err == nil {
		t.Fatal("a client certificate from another CA got through")
	}
	if _, _, err := tlsGet(t, addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{wrongSAN}}); err == nil {
		t.Fatal("a client certificate without the required SAN got through")
	}
	resp, body, err := tlsGet(t, addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{client}})
	if err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("valid client certificate: %v %v %q", err, resp, body)
	}
}

func TestUpstreamTLSVerifiesTheHost(t *testing.T) {
	ca := testutil.NewCA(t)
	_, _, pair := ca.Leaf(t, "127.0.0.1", "up.test")
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls=%v sni=%s", r.TLS != nil, r.TLS.ServerName)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	up.StartTLS()
	t.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "https://")
	wrongCA := testutil.NewCA(t)
	cfg := config(2,
		route(`prefix = "/good"`, "good")+route(`prefix = "/bad"`, "bad"),
		cluster("good", upAddr)+fmt.Sprintf("[cluster.tls]\nca_file = %q\nsni = \"up.test\"\n", ca.File),
		cluster("bad", upAddr)+fmt.Sprintf("[cluster.tls]\nca_file = %q\n", wrongCA.File))
	p := gwtest.Start(t, cfg)
	c := newClient(nil)
	resp, body := get(t, c, "http://"+p.Addr("http")+"/good")
	if resp.StatusCode != 200 || string(body) != "tls=true sni=up.test" {
		t.Fatalf("verified upstream: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, c, "http://"+p.Addr("http")+"/bad")
	if resp.StatusCode != 503 || !strings.Contains(string(body), "UF") {
		t.Fatalf("upstream with an untrusted certificate: %d %q, want 503 UF", resp.StatusCode, body)
	}
}

// TestTLSTerminationPrefersTheExactCertificateOverAWildcard lists a
// wildcard certificate before one for an exact name: as in Envoy, a
// client asking for the exact name gets its certificate, one asking for
// another name under the wildcard gets the wildcard, and one asking for
// an unknown name (or none) gets the first.
func TestTLSTerminationPrefersTheExactCertificateOverAWildcard(t *testing.T) {
	ca := testutil.NewCA(t)
	wildCert, wildKey, _ := ca.Leaf(t, "*.a.test", "127.0.0.1")
	exactCert, exactKey, _ := ca.Leaf(t, "www.a.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf(`
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
`, wildCert, wildKey, exactCert, exactKey), cluster("up", up.Addr)))
	for sni, want := range map[string]string{"www.a.test": "www.a.test", "api.a.test": "*.a.test", "": "*.a.test"} {
		c := dial(t, p.Addr("https"))
		tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		if got := tc.ConnectionState().PeerCertificates[0].DNSNames[0]; got != want {
			t.Errorf("SNI %q got the certificate of %s, want %s", sni, got, want)
		}
		tc.Close()
	}
}

// TestClientSANsWithoutACAFailValidation checks that a chain listing the
// subject alt names its clients' certificates must carry, without the
// ca_file that makes sluice ask for and verify client certificates, is a
// config error (as in Envoy, "SAN-based verification of peer certificates
// without trusted CA is insecure") rather than a chain that lets every
// client in.
func TestClientSANsWithoutACAFailValidation(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey, _ := ca.Leaf(t, "127.0.0.1")
	text := tlsListenerConfig(fmt.Sprintf(`
  match_subject_alt_names = ["client.test"]
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
`, srvCert, srvKey), cluster("up", "127.0.0.1:1"))
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
	if code == 0 || !strings.Contains(out, "match_subject_alt_names") {
		t.Fatalf("validate exited %d with %q, want an error naming match_subject_alt_names", code, out)
	}
}

// TestTLSClientOfferingNoCommonALPNProtocolIsServed connects to a chain
// offering h2 and http/1.1 with a client that offers only http/1.0 (curl
// --http1.0 does): as in Envoy, the handshake completes without an
// application protocol and the request is served, instead of failing with
// no_application_protocol.
func TestTLSClientOfferingNoCommonALPNProtocolIsServed(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey, _ := ca.Leaf(t, "127.0.0.1")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf(`
  [[listener.filter_chain.tls.certificate]]
  cert_file = %q
  key_file = %q
`, srvCert, srvKey), cluster("up", up.Addr)))
	c := dial(t, p.Addr("https"))
	tc := tls.Client(c, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.0"}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake offering only http/1.0: %v", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != "" {
		t.Fatalf("negotiated %q, want no application protocol", got)
	}
	if got := rawGet(t, tc, "HTTP/1.0"); got != "ok" {
		t.Fatalf("response body %q", got)
	}
}

// TestConnectTimeoutCoversTheUpstreamTLSHandshake sends a request to a TLS
// cluster whose host accepts the connection and never answers the
// ClientHello: connect_timeout ends the handshake, as Envoy's covers the
// TCP connect and the handshake together, and the failure counts as a
// connect timeout.
func TestConnectTimeoutCoversTheUpstreamTLSHandshake(t *testing.T) {
	silent := testutil.RawUpstream(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	ca := testutil.NewCA(t)
	cfg := config(1, route(`prefix = "/"`, "silent"),
		strings.Replace(cluster("silent", silent.Addr), `connect_timeout = "1s"`, `connect_timeout = "500ms"`, 1)+
			fmt.Sprintf("[cluster.tls]\nca_file = %q\n", ca.File)) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	start := time.Now()
	resp, body := get(t, newClient(nil), "http://"+p.Addr("http")+"/")
	if resp.StatusCode != 503 || !strings.Contains(string(body), "UF") {
		t.Fatalf("TLS host that never answers the handshake: %d %q, want 503 UF", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the request took %v; connect_timeout is 500ms", took)
	}
	waitCounter(t, admin, "cluster.silent.upstream_cx_connect_timeout", 1)
	if got := adminCounters(t, admin)["cluster.silent.upstream_cx_connect_fail"]; got != 1 {
		t.Errorf("upstream_cx_connect_fail = %v, want 1", got)
	}
}

// TestEmptyALPNListTurnsALPNOff: `alpn = []` on a listener's TLS context
// negotiates no protocol (Envoy's empty alpn_protocols), where leaving the
// key out gives the connection manager's h2 and http/1.1; the client, which
// offers h2 first, is then served HTTP/1.1.
func TestEmptyALPNListTurnsALPNOff(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "a.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	for _, tc := range []struct{ alpn, want string }{{"", "h2"}, {"alpn = []", ""}} {
		p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf("  %s\n  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n",
			tc.alpn, cert, key), cluster("up", up.Addr)))
		c := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "a.test", NextProtos: []string{"h2", "http/1.1"}}}}
		resp, err := c.Get("https://" + p.Addr("https") + "/")
		if err != nil {
			t.Fatalf("%q: %v", tc.alpn, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.TLS.NegotiatedProtocol; got != tc.want || string(b) != "ok" {
			t.Errorf("%q: ALPN %q, body %q; want %q, \"ok\"", tc.alpn, got, b, tc.want)
		}
		if tc.want == "" && resp.ProtoMajor != 1 {
			t.Errorf("%q: served %s, want HTTP/1.1", tc.alpn, resp.Proto)
		}
		p.Stop()
	}
}
