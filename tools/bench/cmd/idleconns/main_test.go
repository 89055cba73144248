package main

import (
	"net"
	"net/http"
	"net/http/httptest"
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

func newIdleServer(t *testing.T, h http.HandlerFunc) *idleServer {
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
	s.Start()
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

func addr(s *idleServer) string { return strings.TrimPrefix(s.URL, "http://") }

func TestOpenAllHoldsIdleKeepAliveConnections(t *testing.T) {
	s := newIdleServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	const n = 200
	conns, err := openAll(addr(s), "/", n, 16, 5*time.Second)
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
	conns, err := openAll(addr(s), "/", 4, 2, 5*time.Second)
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
	conns, err := openAll(addr(s), "/", 3, 3, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "status 502") {
		t.Fatalf("openAll error = %v, want a status 502 error", err)
	}
	if !strings.Contains(err.Error(), "3 of 3") {
		t.Fatalf("openAll error = %v, want it to count 3 of 3 failures", err)
	}
	closeAll(conns)
}
