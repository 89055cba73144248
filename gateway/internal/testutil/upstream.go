package testutil

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is an HTTP/1.1 upstream (net/http) on a loopback port that counts
// the connections it accepted and the requests it served. Its methods are
// safe for concurrent use.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string

	conns    atomic.Int64
	requests atomic.Int64

	mu    sync.Mutex
	paths []string // request targets in arrival order, guarded by mu
}

// Upstream starts h on 127.0.0.1 port 0 and returns the running server. The
// server is closed (every connection at once) when the test ends; handlers
// still blocked then must be released by the test.
func Upstream(t testing.TB, h http.Handler) *Server {
	t.Helper()
	ln := ListenTCP(t)
	s := &Server{Addr: ln.Addr().String()}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			s.mu.Lock()
			s.paths = append(s.paths, r.RequestURI)
			s.mu.Unlock()
			h.ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return s
}

// ConnCount returns how many connections the server has accepted.
func (s *Server) ConnCount() int64 { return s.conns.Load() }

// RequestCount returns how many requests reached the handler.
func (s *Server) RequestCount() int64 { return s.requests.Load() }

// Targets returns the request targets (r.RequestURI) the handler saw, in
// arrival order.
func (s *Server) Targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}
