package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestWebSocketOverHTTP3ExtendedConnect opens a WebSocket with an HTTP/3
// extended CONNECT (:protocol websocket, RFC 9220) from quic-go's client
// and checks that sluice turns it into an HTTP/1.1 Upgrade towards a real
// WebSocket server and carries messages both ways on the stream.
func TestWebSocketOverHTTP3ExtendedConnect(t *testing.T) {
	up, hits := wsUpstream(t)
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	cfg := strings.Replace(h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up),
		"cluster = \"up\"\n", "cluster = \"up\"\n    upgrade = [\"websocket\"]\n", 1)
	p := gwtest.Start(t, cfg)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool}}
	t.Cleanup(func() { tr.Close() })
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	addr := p.Addr("h3")
	req, err := http.NewRequestWithContext(ctx, "CONNECT", "https://"+addr+"/chat", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Proto = "websocket"
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Origin", "https://"+addr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT over HTTP/3: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Sec-Websocket-Accept") != "" {
		t.Fatalf("extended CONNECT answered %d %v, want 200 without Sec-WebSocket-Accept", resp.StatusCode, resp.Header)
	}
	wsExchange(t, pw, resp.Body, hits, "message 0", strings.Repeat("y", 100<<10))
}

// TestConnectOverHTTP3TunnelsToTCPEcho sends a CONNECT over HTTP/3 to a
// route allowing CONNECT and checks that bytes come back from a TCP echo
// server through the stream, and that the client's end of stream reaches
// it as a FIN whose close ends the stream.
func TestConnectOverHTTP3TunnelsToTCPEcho(t *testing.T) {
	up := echoUpstream(t)
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	cfg := strings.Replace(h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr),
		"match = { prefix = \"/\" }\n    cluster = \"up\"\n", "match = { regex = \".*\" }\n    cluster = \"up\"\n    upgrade = [\"CONNECT\"]\n", 1)
	p := gwtest.Start(t, cfg)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool}}
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	msg := pattern(256 << 10)
	req, err := http.NewRequestWithContext(ctx, "CONNECT", "https://"+p.Addr("h3"), strings.NewReader(string(msg)))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "tunnel.test:443"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("CONNECT over HTTP/3: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT over HTTP/3: status %d, want 200", resp.StatusCode)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echoed %d bytes (%v), want the %d sent", len(got), err, len(msg))
	}
}
