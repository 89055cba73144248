package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// wsWriteText writes msg as one masked WebSocket text frame (RFC 6455 §5).
func wsWriteText(w io.Writer, msg string) error {
	p := []byte(msg)
	b := []byte{0x81}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	case len(p) < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	_, err := w.Write(b)
	return err
}

// wsReadText reads one (possibly fragmented) unmasked message.
func wsReadText(r io.Reader) (string, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return "", err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(r, l[:]); err != nil {
				return "", err
			}
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(r, l[:]); err != nil {
				return "", err
			}
			n = binary.BigEndian.Uint64(l[:])
		}
		if h[1]&0x80 != 0 {
			return "", errors.New("masked frame from the server")
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return "", err
		}
		if op := h[0] & 0x0f; op == 8 {
			return "", errors.New("close frame")
		}
		msg = append(msg, p...)
		if h[0]&0x80 != 0 {
			return string(msg), nil
		}
	}
}

// wsExchange checks a WebSocket session with wsUpstream through a tunnel
// written to w and read from r: the upstream's greeting, each message
// echoed, and one upgrade request seen by the upstream.
func wsExchange(t *testing.T, w io.Writer, r io.Reader, hits *atomic.Int64, msgs ...string) {
	t.Helper()
	if hello, err := wsReadText(r); err != nil || hello != "hello" {
		t.Fatalf("greeting %q, %v; want hello", hello, err)
	}
	for _, msg := range msgs {
		if err := wsWriteText(w, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
		got, err := wsReadText(r)
		if err != nil || got != "echo: "+msg {
			t.Fatalf("echo of a %d-byte message: %d bytes, %v", len(msg), len(got), err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1 upgrade", n)
	}
}

// echoedThrough runs send(msg) on another goroutine (send ends the
// sending side: a half-close, the end of a request body) and returns what
// r yields until EOF, failing the test on a read or send error.
func echoedThrough(t *testing.T, r io.Reader, msg []byte, send func([]byte) error) []byte {
	t.Helper()
	werr := make(chan error, 1)
	go func() { werr <- send(msg) }()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read after %d bytes: %v", len(got), err)
	}
	if err := gwtest.Recv(t, werr, "end of the writer"); err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

// writeThenCloseWrite is a send for echoedThrough on a TCP connection.
func writeThenCloseWrite(c net.Conn) func([]byte) error {
	return func(b []byte) error {
		if _, err := c.Write(b); err != nil {
			return err
		}
		return c.(*net.TCPConn).CloseWrite()
	}
}

// TestWebSocketOverHTTP2ExtendedConnect opens a WebSocket with an HTTP/2
// extended CONNECT (:protocol websocket, RFC 8441) from x/net's client,
// which refuses unless sluice advertises SETTINGS_ENABLE_CONNECT_PROTOCOL.
// sluice must turn it into an HTTP/1.1 Upgrade towards a real WebSocket
// server, answer 200 on the stream, and carry messages both ways.
func TestWebSocketOverHTTP2ExtendedConnect(t *testing.T) {
	up, hits := wsUpstream(t)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "ws", `upgrade = ["websocket"]`), cluster("ws", up)))
	addr := p.Addr("http")
	tr := h2cTransport(nil)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "CONNECT", "http://"+addr+"/chat", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Origin", "http://"+addr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Sec-Websocket-Accept") != "" {
		t.Fatalf("extended CONNECT answered %d %v, want 200 without Sec-WebSocket-Accept", resp.StatusCode, resp.Header)
	}
	wsExchange(t, pw, resp.Body, hits, "message 0", "message 1", strings.Repeat("x", 200<<10))
}

// TestWebSocketOverHTTP2RefusedWithoutRouteUpgrade checks that an
// extended CONNECT on a route without upgrade = ["websocket"] is answered
// 403 and never reaches the upstream.
func TestWebSocketOverHTTP2RefusedWithoutRouteUpgrade(t *testing.T) {
	up, hits := wsUpstream(t)
	p := gwtest.Start(t, simpleConfig(1, up))
	tr := h2cTransport(nil)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "CONNECT", "http://"+p.Addr("http")+"/chat", http.NoBody)
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || hits.Load() != 0 {
		t.Fatalf("status %d, %d upstream requests; want 403 and none", resp.StatusCode, hits.Load())
	}
}

// connectH2 sends CONNECT authority over HTTP/2 to sluice at addr with the
// request body pr and checks the 200.
func connectH2(t *testing.T, tr *http2.Transport, addr, authority string, body io.Reader) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	t.Cleanup(cancel)
	req := (&http.Request{Method: "CONNECT", URL: &url.URL{Scheme: "http", Host: addr}, Host: authority,
		Header: http.Header{}, Body: io.NopCloser(body)}).WithContext(ctx)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("CONNECT over HTTP/2: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT over HTTP/2: status %d, want 200", resp.StatusCode)
	}
	return resp
}

// TestConnectOverHTTP2TunnelsToTCPEcho sends a CONNECT over HTTP/2 to a
// route allowing CONNECT, streams 1 MiB through it to a TCP echo server,
// and checks that the client's END_STREAM reaches the echo server as a FIN
// whose close ends the stream with every byte echoed.
func TestConnectOverHTTP2TunnelsToTCPEcho(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, connectConfig(up.Addr))
	tr := h2cTransport(nil)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	resp := connectH2(t, tr, p.Addr("http"), "tunnel.test:443", pr)
	msg := pattern(1 << 20)
	got := echoedThrough(t, resp.Body, msg, func(b []byte) error {
		_, err := pw.Write(b)
		pw.CloseWithError(err)
		return err
	})
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(msg))
	}
}

// tunnelIdleConfig is connectConfig with stream_idle_timeout idle and a
// JSON access log at logPath.
func tunnelIdleConfig(target, idle, logPath string) string {
	return strings.Replace(connectConfig(target), `route_config = "local"`, fmt.Sprintf(`route_config = "local"
    stream_idle_timeout = %q
      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      [listener.filter_chain.filter.config.access_log.json_format]
      method = "%%REQ(:METHOD)%%"
      flags = "%%RESPONSE_FLAGS%%"
      protocol = "%%PROTOCOL%%"`, idle, logPath), 1)
}

// waitLogLine polls the access log at path for a line containing all of
// want.
func waitLogLine(t *testing.T, path string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			ok := line != ""
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line with %q in:\n%s", want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTunnelIdleTimeoutClosesIdleTunnels checks that stream_idle_timeout
// closes an HTTP/1.1 and an HTTP/2 CONNECT tunnel on which no byte moves
// (access log flag SI), not before the timeout, and never an active
// tunnel that moves a byte more often than that.
func TestTunnelIdleTimeoutClosesIdleTunnels(t *testing.T) {
	const idle = 300 * time.Millisecond
	up := echoUpstream(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, tunnelIdleConfig(up.Addr, idle.String(), logPath))
	addr := p.Addr("http")

	// Active HTTP/1.1 tunnel: a byte every idle/3 for 4 idle periods.
	active, abr := connectThrough(t, addr)
	tick := time.NewTicker(idle / 3)
	for range 12 {
		<-tick.C
		if _, err := active.Write([]byte("x")); err != nil {
			t.Fatalf("active tunnel write: %v", err)
		}
		if b, err := abr.ReadByte(); err != nil || b != 'x' {
			t.Fatalf("active tunnel closed: %q %v", b, err)
		}
	}
	tick.Stop()

	// Idle HTTP/1.1 tunnel.
	start := time.Now()
	c, br := connectThrough(t, addr)
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("read %q from an idle tunnel", b)
	}
	if el := time.Since(start); el < idle {
		t.Fatalf("idle HTTP/1.1 tunnel closed after %v, before stream_idle_timeout %v", el, idle)
	}
	c.Close()
	waitLogLine(t, logPath, `"flags":"SI"`, `"protocol":"HTTP/1.1"`)

	// Idle HTTP/2 tunnel: the stream is reset.
	tr := h2cTransport(nil)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	start = time.Now()
	resp := connectH2(t, tr, addr, "tunnel.test:443", pr)
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("an idle HTTP/2 tunnel ended cleanly, want a reset")
	}
	if el := time.Since(start); el < idle {
		t.Fatalf("idle HTTP/2 tunnel closed after %v, before stream_idle_timeout %v", el, idle)
	}
	waitLogLine(t, logPath, `"flags":"SI"`, `"protocol":"HTTP/2"`)
	active.Close()
}
