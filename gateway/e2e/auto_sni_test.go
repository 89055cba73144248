package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// sniUpstream is a TLS upstream with a certificate for a.example and one
// for b.example, chosen by SNI (a.example's for any other name). Each
// response reports the server name of the connection it came on; handshakes
// returns the server names of the handshakes it saw, in order.
func sniUpstream(t *testing.T, h2 bool) (addr string, ca *testutil.CA, handshakes func() []string) {
	t.Helper()
	ca = testutil.NewCA(t)
	_, _, a := ca.Leaf(t, "a.example")
	_, _, b := ca.Leaf(t, "b.example")
	var mu sync.Mutex
	var seen []string
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sni=%s proto=%d host=%s", r.TLS.ServerName, r.ProtoMajor, r.Host)
	}))
	up.EnableHTTP2 = h2
	up.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		mu.Lock()
		seen = append(seen, hello.ServerName)
		mu.Unlock()
		if hello.ServerName == "b.example" {
			return &b, nil
		}
		return &a, nil
	}}
	up.StartTLS()
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "https://"), ca, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// getHost sends GET / with the given Host through sluice at addr.
func getHost(t *testing.T, c *http.Client, addr, path, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, body := do(t, c, req)
	return resp, string(body)
}

// TestAutoSNISendsTheRequestAuthorityAsServerName checks auto_sni over
// HTTP/1.1 and HTTP/2 upstreams: a request with Host a.example:8080
// reaches the upstream with SNI a.example, one with b.example with SNI
// b.example (and its certificate passes auto_san_validation), and
// connections are pooled per name: alternating requests reuse the one
// connection made for their name and never the other's.
func TestAutoSNISendsTheRequestAuthorityAsServerName(t *testing.T) {
	for _, proto := range []string{"http1", "http2"} {
		t.Run(proto, func(t *testing.T) {
			upAddr, ca, handshakes := sniUpstream(t, proto == "http2")
			p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"),
				cluster("up", upAddr)+fmt.Sprintf("protocol = %q\n[cluster.tls]\nca_file = %q\nauto_sni = true\nauto_san_validation = true\nalpn = [\"h2\", \"http/1.1\"]\n",
					proto, ca.File)))
			c := newClient(nil)
			major := map[string]int{"http1": 1, "http2": 2}[proto]
			for i, host := range []string{"a.example:8080", "b.example", "a.example:8080", "b.example"} {
				resp, body := getHost(t, c, p.Addr("http"), "/", host)
				name, _, _ := strings.Cut(host, ":")
				want := fmt.Sprintf("sni=%s proto=%d host=%s", name, major, host)
				if resp.StatusCode != 200 || body != want {
					t.Fatalf("request %d with Host %s: %d %q, want 200 %q", i, host, resp.StatusCode, body, want)
				}
			}
			if got := handshakes(); len(got) != 2 || got[0] != "a.example" || got[1] != "b.example" {
				t.Fatalf("upstream handshakes with SNI %q, want [a.example b.example] (one pooled connection per name)", got)
			}
		})
	}
}

// TestAutoSANValidationRejectsACertificateForAnotherName checks that with
// auto_san_validation a host whose certificate does not name the SNI sent
// is a connection failure (503 UF) even when insecure_skip_verify skips the
// chain, while the same cluster without it accepts the certificate.
func TestAutoSANValidationRejectsACertificateForAnotherName(t *testing.T) {
	upAddr, _, handshakes := sniUpstream(t, false)
	tlsBlock := "[cluster.tls]\ninsecure_skip_verify = true\nauto_sni = true\n"
	p := gwtest.Start(t, config(1, route(`prefix = "/strict"`, "strict")+route(`prefix = "/fixed"`, "fixed")+route(`prefix = "/"`, "lax"),
		cluster("strict", upAddr)+tlsBlock+"auto_san_validation = true\n",
		cluster("fixed", upAddr)+"[cluster.tls]\ninsecure_skip_verify = true\nsni = \"c.example\"\nauto_san_validation = true\n",
		cluster("lax", upAddr)+tlsBlock))
	c := newClient(nil)
	resp, body := getHost(t, c, p.Addr("http"), "/strict", "c.example")
	if resp.StatusCode != 503 || !strings.Contains(body, "UF") {
		t.Fatalf("c.example with a.example's certificate under auto_san_validation: %d %q, want 503 UF", resp.StatusCode, body)
	}
	if got := handshakes(); len(got) == 0 || got[0] != "c.example" {
		t.Fatalf("upstream handshakes %q, want SNI c.example", got)
	}
	resp, body = getHost(t, c, p.Addr("http"), "/strict", "a.example")
	if resp.StatusCode != 200 || body != "sni=a.example proto=1 host=a.example" {
		t.Fatalf("a.example under auto_san_validation: %d %q", resp.StatusCode, body)
	}
	resp, body = getHost(t, c, p.Addr("http"), "/fixed", "a.example")
	if resp.StatusCode != 503 || !strings.Contains(body, "UF") {
		t.Fatalf("fixed sni c.example with a.example's certificate under auto_san_validation: %d %q, want 503 UF", resp.StatusCode, body)
	}
	resp, body = getHost(t, c, p.Addr("http"), "/", "c.example")
	if resp.StatusCode != 200 || body != "sni=c.example proto=1 host=c.example" {
		t.Fatalf("c.example without auto_san_validation: %d %q, want 200", resp.StatusCode, body)
	}
}
