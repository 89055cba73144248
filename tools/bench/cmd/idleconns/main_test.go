package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// idleServer is a loopback HTTP/1.1 server that counts the connections it
// holds in the idle keep-alive state.
type idleServer struct {
	*httptest.Server
	mu   sync.Mutex
	idle map[net.Conn]bool
	// changed is signalled on every connection state change.
	changed chan struct{}
}

// newIdleServer starts a plaintext server.
func newIdleServer(t *testing.T, h http.HandlerFunc) *idleServer {
	t.Helper()
	return startIdleServer(t, h, func(s *httptest.Server) { s.Start() })
}

// newTLSIdleServer starts a TLS server offering the ALPN protocols alpn, in
// its order of preference, with HTTP/2 enabled if alpn has "h2".
func newTLSIdleServer(t *testing.T, h http.HandlerFunc, alpn ...string) *idleServer {
	t.Helper()
	return startIdleServer(t, h, func(s *httptest.Server) {
		s.EnableHTTP2 = slices.Contains(alpn, "h2")
		s.TLS = &tls.Config{NextProtos: append([]string{}, alpn...)}
		s.StartTLS()
	})
}

func startIdleServer(t *testing.T, h http.HandlerFunc, start func(*httptest.Server)) *idleServer {
	t.Helper()
	s := &idleServer{idle: make(map[net.Conn]bool), changed: make(chan struct{}, 1)}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		s.mu.Lock()
		if st == http.StateIdle {
			s.idle[c] = true
		} else {
			delete(s.idle, c)
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	start(s.Server)
	t.Cleanup(s.Close)
	return s
}

// waitIdle waits until the server holds exactly n idle connections.
func (s *idleServer) waitIdle(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.idle)
		s.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("server holds %d idle connections, want %d", got, n)
		}
	}
}

func addr(s *idleServer) string { return s.Listener.Addr().String() }

func TestOpenAllHoldsIdleKeepAliveConnections(t *testing.T) {
	s := newIdleServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	const n = 200
	conns, err := openAll(addr(s), "/", "", n, 16, 5*time.Second)
	if err != nil {
		t.Fatalf("openAll: %v", err)
	}
	if len(conns) != n {
		t.Fatalf("openAll returned %d connections, want %d", len(conns), n)
	}
	s.waitIdle(t, n)
	closeAll(conns)
	s.waitIdle(t, 0)
}

func TestOpenAllRejectsConnectionClose(t *testing.T) {
	s := newIdleServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("bye"))
	})
	conns, err := openAll(addr(s), "/", "", 4, 2, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "keep-alive") {
		t.Fatalf("openAll error = %v, want a keep-alive error", err)
	}
	if len(conns) != 0 {
		t.Fatalf("openAll kept %d connections, want 0", len(conns))
	}
}

func TestOpenAllRejectsNon200(t *testing.T) {
	s := newIdleServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadGateway)
	})
	conns, err := openAll(addr(s), "/", "", 3, 3, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "status 502") {
		t.Fatalf("openAll error = %v, want a status 502 error", err)
	}
	if !strings.Contains(err.Error(), "3 of 3") {
		t.Fatalf("openAll error = %v, want it to count 3 of 3 failures", err)
	}
	closeAll(conns)
}

// protoRecorder answers "ok" and records the protocol of the last request.
type protoRecorder struct {
	mu    sync.Mutex
	proto string
}

func (p *protoRecorder) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.proto = r.Proto
	if r.TLS == nil {
		p.proto += " without TLS"
	}
	p.mu.Unlock()
	w.Write([]byte("ok"))
}

func (p *protoRecorder) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proto
}

// testTLSHoldsIdle opens n connections in mode to a TLS server that prefers
// the other protocol (so that they get mode only if they offer nothing else)
// and checks that they were served with proto, held idle, and closed by
// closeAll.
func testTLSHoldsIdle(t *testing.T, mode, proto string, alpn ...string) {
	var rec protoRecorder
	s := newTLSIdleServer(t, rec.handle, alpn...)
	const n = 50
	conns, err := openAll(addr(s), "/", mode, n, 8, 5*time.Second)
	if err != nil {
		t.Fatalf("openAll: %v", err)
	}
	if len(conns) != n {
		t.Fatalf("openAll returned %d connections, want %d", len(conns), n)
	}
	if got := rec.get(); got != proto {
		t.Fatalf("server saw %q requests, want %q", got, proto)
	}
	s.waitIdle(t, n)
	closeAll(conns)
	s.waitIdle(t, 0)
}

func TestOpenAllTLSHTTP1HoldsIdleConnections(t *testing.T) {
	testTLSHoldsIdle(t, "http/1.1", "HTTP/1.1", "h2", "http/1.1")
}

func TestOpenAllH2HoldsIdleConnections(t *testing.T) {
	testTLSHoldsIdle(t, "h2", "HTTP/2.0", "http/1.1", "h2")
}

func TestOpenAllTLSRejectsOtherALPNProtocol(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }
	// A server without ALPN negotiates no protocol, whatever the client offers.
	s := newTLSIdleServer(t, ok)
	for _, mode := range []string{"http/1.1", "h2"} {
		conns, err := openAll(addr(s), "/", mode, 2, 2, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), `negotiated ALPN protocol "", want "`+mode+`"`) {
			t.Fatalf("openAll -tls %s error = %v, want an ALPN error", mode, err)
		}
		if len(conns) != 0 {
			t.Fatalf("openAll -tls %s kept %d connections, want 0", mode, len(conns))
		}
	}
}

func TestOpenAllH2RejectsNon200(t *testing.T) {
	s := newTLSIdleServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}, "h2")
	conns, err := openAll(addr(s), "/", "h2", 3, 3, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("openAll error = %v, want a status 503 error", err)
	}
	if len(conns) != 0 {
		t.Fatalf("openAll kept %d connections, want 0", len(conns))
	}
	s.waitIdle(t, 0)
}
