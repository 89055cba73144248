package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/conn"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/server"
	"golang.org/x/net/http2"
)

// waitFor polls cond (a state this process can only observe, not wait on)
// until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serveGen(t *testing.T, cfg *config.Config) string {
	addr, _ := serveGeneration(t, cfg)
	return addr
}

// serveGeneration builds a generation for cfg and serves its listener "l"
// on a loopback address; it returns the address and the generation.
func serveGeneration(t *testing.T, cfg *config.Config) (string, *server.Generation) {
	t.Helper()
	g, err := server.Build(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve("l", ln)
	return ln.Addr().String(), g
}

func TestIdleKeepAliveConnectionsParkWithoutGoroutines(t *testing.T) {
	addr := serveGen(t, genConfig(t, "parked", "127.0.0.1:1"))
	base := runtime.NumGoroutine()
	const n = 300
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i], readers[i] = c, bufio.NewReader(c)
		if body, _ := get(t, c, readers[i], "/"); body != "parked" {
			t.Fatalf("conn %d: %q", i, body)
		}
	}
	// Once parked, the connections hold no goroutine of their own.
	waitFor(t, "idle connections to park", func() bool { return conn.Parked() >= n })
	if g := runtime.NumGoroutine(); g > base+n/10 {
		t.Fatalf("%d goroutines with %d parked connections, %d before they were opened", g, n, base)
	}
	for i, c := range conns {
		if body, _ := get(t, c, readers[i], "/"); body != "parked" {
			t.Fatalf("conn %d after parking: %q", i, body)
		}
	}
}

func TestParkedConnectionClosesAtIdleTimeout(t *testing.T) {
	cfg := genConfig(t, "idle", "127.0.0.1:1")
	cfg2, err := config.Parse("idle.toml", []byte(strings.Replace(string(cfg.Source),
		`route_config = "r"`, "route_config = \"r\"\nidle_timeout = \"300ms\"", 1)))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveGen(t, cfg2)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if body, _ := get(t, c, br, "/"); body != "idle" {
		t.Fatalf("first response %q", body)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %v, want EOF when the idle timeout closes it", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the 300ms idle timeout", d)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("never closed")
	}
}

func TestDrainHandsOffParkedConnection(t *testing.T) {
	addr, g1 := twoGenerations(t, "127.0.0.1:1")
	parked := conn.Parked()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if body, _ := get(t, c, br, "/"); body != "gen1" {
		t.Fatalf("first response %q", body)
	}
	waitFor(t, "the connection to park", func() bool { return conn.Parked() > parked })
	<-drain(g1)
	if body, _ := get(t, c, br, "/"); body != "gen2" {
		t.Fatalf("after draining a parked connection: %q, want gen2", body)
	}
}

// tlsGenConfig is genConfig with its filter chain terminating TLS with a
// certificate for "parked.test" from ca.
func tlsGenConfig(t *testing.T, ca *testutil.CA, name string) *config.Config {
	t.Helper()
	certFile, keyFile, _ := ca.Leaf(t, "parked.test")
	text := strings.Replace(string(genConfig(t, name, "127.0.0.1:1").Source), "[[listener.filter_chain]]\n",
		fmt.Sprintf("[[listener.filter_chain]]\n[listener.filter_chain.tls]\n[[listener.filter_chain.tls.certificate]]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile), 1)
	cfg, err := config.Parse(name+".toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// splitConn holds back the tail of what is written through it while hold
// is set, so that a test can leave a TLS record half sent.
type splitConn struct {
	net.Conn
	hold []byte // nil: write through; else the bytes held back
	keep int    // with hold set: the bytes of each write that go through
}

func (c *splitConn) Write(p []byte) (int, error) {
	if c.hold == nil || len(p) <= c.keep {
		return c.Conn.Write(p)
	}
	c.hold = append(c.hold, p[c.keep:]...)
	if _, err := c.Conn.Write(p[:c.keep]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Idle keep-alive connections over TLS park like plaintext ones: in the
// parker's set on the socket under TLS, without a goroutine, and are
// served again when the next request arrives, also when the TLS record
// carrying it arrives in two parts, the first before the connection
// parked (TLS holds the part it read; the socket's readiness shows the
// rest).
func TestIdleTLSConnectionsParkWithoutGoroutines(t *testing.T) {
	ca := testutil.NewCA(t)
	// With the TLS inspector, whose peek at the ClientHello reaches TLS
	// as bytes read ahead (consumed by the handshake).
	cfg := tlsGenConfig(t, ca, "tlsparked")
	cfg, err := config.Parse("tlsparked.toml", []byte(strings.Replace(string(cfg.Source), "[[listener.filter_chain]]\n",
		"[[listener.listener_filter]]\nname = \"sluice.filters.listener.tls_inspector\"\n[[listener.filter_chain]]\n", 1)))
	if err != nil || len(cfg.Listeners[0].ListenerFilters) != 1 {
		t.Fatalf("config: %v, listener filters %v", err, cfg.Listeners[0].ListenerFilters)
	}
	addr := serveGen(t, cfg)
	base, parked := runtime.NumGoroutine(), conn.Parked()
	const n = 100
	conns := make([]*tls.Conn, n)
	raw := make([]*splitConn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		raw[i] = &splitConn{Conn: nc}
		conns[i] = tls.Client(raw[i], &tls.Config{ServerName: "parked.test", RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}})
		readers[i] = bufio.NewReader(conns[i])
		if body, _ := get(t, conns[i], readers[i], "/"); body != "tlsparked" {
			t.Fatalf("conn %d: %q", i, body)
		}
	}
	waitFor(t, "idle TLS connections to park", func() bool { return conn.Parked() >= parked+n })
	if g := runtime.NumGoroutine(); g > base+n/10 {
		t.Fatalf("%d goroutines with %d parked TLS connections, %d before they were opened", g, n, base)
	}
	for i, c := range conns {
		if body, _ := get(t, c, readers[i], "/"); body != "tlsparked" {
			t.Fatalf("conn %d after parking: %q", i, body)
		}
	}

	// Half a record (its header's first 3 bytes) before the connection
	// parks, the rest after.
	c, rc, br := conns[0], raw[0], readers[0]
	waitFor(t, "the connections to park again", func() bool { return conn.Parked() >= parked+n })
	rc.hold, rc.keep = []byte{}, 3
	if _, err := fmt.Fprintf(c, "GET /half HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	rest := rc.hold
	rc.hold = nil
	// The connection read the 3 bytes and waits in the parker's set, not
	// on a goroutine of its own, before the rest is sent.
	waitFor(t, "the half-sent connection to park", func() bool { return conn.Parked() >= parked+n })
	if g := runtime.NumGoroutine(); g > base+n/10 {
		t.Fatalf("%d goroutines with %d parked TLS connections, %d before they were opened", g, n, base)
	}
	if _, err := rc.Conn.Write(rest); err != nil {
		t.Fatal(err)
	}
	if body, _ := readResponse(t, br); body != "tlsparked" {
		t.Fatalf("request sent in two parts around the park: %q", body)
	}
}

// Idle HTTP/2 connections park too: after parkAfter without a stream or a
// byte from the client, the frame reader's goroutine and the writer's
// return, and the next request on the connection is served again.
func TestIdleHTTP2ConnectionsParkWithoutGoroutines(t *testing.T) {
	ca := testutil.NewCA(t)
	addr := serveGen(t, tlsGenConfig(t, ca, "h2parked"))
	base, parked := runtime.NumGoroutine(), conn.Parked()
	const n = 50
	clients := make([]*http2.ClientConn, n)
	tr := &http2.Transport{}
	for i := range clients {
		tc, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "parked.test", RootCAs: ca.Pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN %q, want h2", p)
		}
		if clients[i], err = tr.NewClientConn(tc); err != nil {
			t.Fatal(err)
		}
		if body := h2Get(t, clients[i]); body != "h2parked" {
			t.Fatalf("conn %d: %q", i, body)
		}
	}
	waitFor(t, "idle HTTP/2 connections to park", func() bool { return conn.Parked() >= parked+n })
	// The client side of each connection keeps a reader goroutine of its
	// own; the server side keeps none.
	if g := runtime.NumGoroutine(); g > base+n+n/10 {
		t.Fatalf("%d goroutines with %d parked HTTP/2 connections (%d of them the clients'), %d before they were opened", g, n, n, base)
	}
	for i, cc := range clients {
		if body := h2Get(t, cc); body != "h2parked" {
			t.Fatalf("conn %d after parking: %q", i, body)
		}
	}
}

// h2Get sends GET / on cc and returns the body of its 200 response.
func h2Get(t *testing.T, cc *http2.ClientConn) string {
	t.Helper()
	req, err := http.NewRequest("GET", "https://parked.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, body %q, error %v", resp.StatusCode, body, err)
	}
	return string(body)
}

// A parked HTTP/2 connection still ends as a running one does: a drain
// resumes it for its GOAWAY, and the idle timeout's final GOAWAY and close
// reach it (the parker's sweep serves it again for the close).
func TestParkedHTTP2ConnectionsEndOnDrainAndIdleTimeout(t *testing.T) {
	ca := testutil.NewCA(t)
	open := func(t *testing.T, cfg *config.Config) (*server.Generation, *http2.ClientConn) {
		addr, g := serveGeneration(t, cfg)
		parked := conn.Parked()
		tc, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "parked.test", RootCAs: ca.Pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
		cc, err := (&http2.Transport{}).NewClientConn(tc)
		if err != nil {
			t.Fatal(err)
		}
		h2Get(t, cc)
		waitFor(t, "the connection to park", func() bool { return conn.Parked() > parked })
		return g, cc
	}
	t.Run("drain", func(t *testing.T) {
		g, cc := open(t, tlsGenConfig(t, ca, "drained"))
		done := drain(g)
		waitFor(t, "the drain's GOAWAY and close", func() bool { return cc.State().Closed })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the drain did not end")
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		cfg := tlsGenConfig(t, ca, "idle")
		cfg, err := config.Parse("idle.toml", []byte(strings.Replace(string(cfg.Source),
			`route_config = "r"`, "route_config = \"r\"\nidle_timeout = \"500ms\"", 1)))
		if err != nil {
			t.Fatal(err)
		}
		_, cc := open(t, cfg)
		start := time.Now()
		waitFor(t, "the idle timeout's GOAWAY and close", func() bool { return cc.State().Closed })
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("closed %v after parking, idle timeout 500ms", d)
		}
	})
}

// An h2c connection that a listener with codec_type "auto" read as HTTP/1
// until its preface parks as well.
func TestIdleH2CConnectionsPark(t *testing.T) {
	addr := serveGen(t, genConfig(t, "h2c", "127.0.0.1:1"))
	parked := conn.Parked()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	if body := h2Get(t, cc); body != "h2c" {
		t.Fatalf("first response %q", body)
	}
	waitFor(t, "the h2c connection to park", func() bool { return conn.Parked() > parked })
	if body := h2Get(t, cc); body != "h2c" {
		t.Fatalf("response after parking %q", body)
	}
}
