package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/conn"
	"github.com/sluice-proxy/sluice/gateway/server"
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
	return ln.Addr().String()
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
