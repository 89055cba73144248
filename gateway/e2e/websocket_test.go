package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// wsUpstream is a WebSocket server that greets each connection with
// "hello", then echoes every message prefixed with "echo: ". hits counts
// the HTTP requests it received (upgrades or not).
func wsUpstream(t *testing.T) (addr string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	ws := websocket.Handler(func(c *websocket.Conn) {
		if websocket.Message.Send(c, "hello") != nil {
			return
		}
		for {
			var msg string
			if websocket.Message.Receive(c, &msg) != nil {
				return
			}
			if websocket.Message.Send(c, "echo: "+msg) != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		ws.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), hits
}

// wsDial does the WebSocket handshake with sluice at addr and reads the
// upstream's greeting.
func wsDial(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig("ws://"+addr+"/chat", "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, dial(t, addr))
	if err != nil {
		t.Fatalf("websocket handshake through sluice: %v", err)
	}
	var hello string
	if err := websocket.Message.Receive(ws, &hello); err != nil || hello != "hello" {
		t.Fatalf("greeting: %q, %v; want hello", hello, err)
	}
	return ws
}

// wsEcho sends msg and checks the upstream's echo.
func wsEcho(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := websocket.Message.Send(ws, msg); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil || got != "echo: "+msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// TestWebSocketUpgradeTunnelsMessagesBothWays does a real WebSocket
// handshake through sluice on a route with upgrade = ["websocket"], then
// exchanges messages both ways, including one larger than a read buffer.
func TestWebSocketUpgradeTunnelsMessagesBothWays(t *testing.T) {
	up, hits := wsUpstream(t)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "ws", `upgrade = ["websocket"]`), cluster("ws", up)))

	ws := wsDial(t, p.Addr("http"))
	for i := range 5 {
		wsEcho(t, ws, fmt.Sprintf("message %d", i))
	}
	wsEcho(t, ws, strings.Repeat("x", 200<<10))
	ws.Close()
	if n := hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1 upgrade", n)
	}
}

// TestWebSocketUpgradeRefusedWithoutRouteUpgrade checks that a route that
// does not allow the upgrade answers 403 (as Envoy does), does not reach
// the upstream, and closes the connection instead of tunnelling.
func TestWebSocketUpgradeRefusedWithoutRouteUpgrade(t *testing.T) {
	up, hits := wsUpstream(t)
	p := gwtest.Start(t, simpleConfig(1, up))

	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Origin: http://example.com\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, _ := readResponse(t, br, "GET")
	if resp.StatusCode != 403 {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	assertClosed(t, c, br)
	if n := hits.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests, want none", n)
	}
}

// TestWebSocketUpgradeDeclinedByUpstreamIsPassedOn checks that an
// upstream answering an upgrade with a plain response (no 101) gets that
// response passed downstream, and that the connection then closes.
func TestWebSocketUpgradeDeclinedByUpstreamIsPassedOn(t *testing.T) {
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 8\r\nX-Upgrade: %s\r\n\r\ndeclined", req.Header.Get("Upgrade"))
	})
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "ws", `upgrade = ["websocket"]`), cluster("ws", up.Addr)))

	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != 426 || string(body) != "declined" || resp.Header.Get("X-Upgrade") != "websocket" {
		t.Fatalf("got %d %q (upstream saw Upgrade %q), want 426 \"declined\" to an upgrade request",
			resp.StatusCode, body, resp.Header.Get("X-Upgrade"))
	}
	assertClosed(t, c, br)
}

// connectConfig has a virtual host "tunnel.test" whose catch-all route
// allows CONNECT to cluster "target", next to the default one.
func connectConfig(target string) string {
	return config(1, route(`prefix = "/"`, "target")+`
  [[route_config.virtual_host]]
  name = "tunnel"
  domains = ["tunnel.test"]
`+route(`regex = ".*"`, "target", `upgrade = ["CONNECT"]`), cluster("target", target))
}

// connectThrough sends CONNECT tunnel.test:443 on a new connection and
// checks the 200.
func connectThrough(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := dial(t, addr)
	fmt.Fprintf(c, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatalf("CONNECT response: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT status %d, want 200", resp.StatusCode)
	}
	return c, br
}

// TestConnectTunnelsToTCPEcho sends CONNECT through sluice to a plain TCP
// echo server and checks that bytes (1 MiB of them) come back, and that the
// client's FIN reaches the echo server, whose close ends the tunnel.
func TestConnectTunnelsToTCPEcho(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, connectConfig(up.Addr))

	c, br := connectThrough(t, p.Addr("http"))
	msg := pattern(1 << 20)
	got := echoedThrough(t, br, msg, writeThenCloseWrite(c))
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(msg))
	}
}

// TestConnectRefusedWithoutRouteUpgrade checks that CONNECT on a route that
// does not allow it gets 403 and no connection to the target.
func TestConnectRefusedWithoutRouteUpgrade(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, config(1, route(`regex = ".*"`, "target"), cluster("target", up.Addr)))

	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n")
	br := bufio.NewReader(c)
	resp, _ := readResponse(t, br, "CONNECT")
	if resp.StatusCode != 403 {
		t.Fatalf("CONNECT status %d, want 403", resp.StatusCode)
	}
	assertClosed(t, c, br)
}

// TestTunnelPassesHalfCloseBothWays checks, through CONNECT tunnels, that a
// FIN from either side reaches the other while the opposite direction
// keeps flowing.
func TestTunnelPassesHalfCloseBothWays(t *testing.T) {
	fromClient := make(chan []byte, 2)
	// The upstream greets, half-closes, reads to EOF, then answers with
	// what it read and closes: both directions are exercised in order.
	up := testutil.RawUpstream(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		fromClient <- b
	})
	p := gwtest.Start(t, connectConfig(up.Addr))

	t.Run("upstream first", func(t *testing.T) {
		c, br := connectThrough(t, p.Addr("http"))
		got, err := io.ReadAll(br)
		if err != nil || string(got) != "hello" {
			t.Fatalf("client read %q (err %v), want hello then EOF", got, err)
		}
		c.Write([]byte("still here"))
		c.(*net.TCPConn).CloseWrite()
		select {
		case b := <-fromClient:
			if string(b) != "still here" {
				t.Fatalf("upstream read %q, want %q", b, "still here")
			}
		case <-time.After(ioTimeout):
			t.Fatal("the upstream never saw the client's bytes and FIN")
		}
	})

	downFirst := make(chan []byte, 1)
	up2 := testutil.RawUpstream(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		downFirst <- b
		c.Write([]byte("bye"))
	})
	p2 := gwtest.Start(t, connectConfig(up2.Addr))
	t.Run("client first", func(t *testing.T) {
		c, br := connectThrough(t, p2.Addr("http"))
		c.Write([]byte("request"))
		c.(*net.TCPConn).CloseWrite()
		select {
		case b := <-downFirst:
			if string(b) != "request" {
				t.Fatalf("upstream read %q, want %q", b, "request")
			}
		case <-time.After(ioTimeout):
			t.Fatal("the upstream never saw the client's FIN")
		}
		got, err := io.ReadAll(br)
		if err != nil || string(got) != "bye" {
			t.Fatalf("client read %q (err %v), want bye then EOF", got, err)
		}
	})
}

// TestWebSocketTunnelSurvivesReload opens a WebSocket, reloads sluice, and
// checks that the tunnel keeps working in the draining generation (it is
// not handed off) while new connections are served by the new one.
func TestWebSocketTunnelSurvivesReload(t *testing.T) {
	up, hits := wsUpstream(t)
	cfg := config(1, route(`prefix = "/"`, "ws", `upgrade = ["websocket"]`), cluster("ws", up))
	p := gwtest.Start(t, cfg)

	ws := wsDial(t, p.Addr("http"))
	wsEcho(t, ws, "before reload")

	// The new generation allows the same upgrade under a new route name.
	cfg2 := config(1, route(`prefix = "/"`, "ws", `upgrade = ["websocket"]`, `name = "gen-2"`), cluster("ws", up))
	if err := os.WriteFile(p.ConfigPath, []byte(cfg2), 0o600); err != nil {
		t.Fatal(err)
	}
	mark := p.Mark()
	reloadOK(t, p, "reload")
	prev := intField(p.WaitLogSince(t, mark, "reload complete", nil, 15*time.Second), "previous_generation")
	isPrev := func(e map[string]any) bool { return intField(e, "generation") == prev }

	for i := range 3 {
		wsEcho(t, ws, fmt.Sprintf("after reload %d", i))
	}
	ws2 := wsDial(t, p.Addr("http"))
	wsEcho(t, ws2, "new connection")
	ws2.Close()
	for _, e := range p.Logs()[mark:] {
		if e.Msg() == "generation drained" && isPrev(e) {
			t.Fatal("the old generation drained while its tunnel was open")
		}
	}
	ws.Close()
	// The draining generation ends once its tunnel does.
	p.WaitLogSince(t, mark, "generation drained", isPrev, 15*time.Second)
	if n := hits.Load(); n != 2 {
		t.Fatalf("upstream saw %d upgrades, want 2", n)
	}
}
