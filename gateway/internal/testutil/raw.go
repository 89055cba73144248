package testutil

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// RawServer is an upstream that hands each accepted connection to a function,
// for upstreams that must misbehave on cue: reset mid-response, hang, answer
// with invalid HTTP. Its methods are safe for concurrent use.
type RawServer struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string

	conns atomic.Int64

	mu   sync.Mutex
	open map[net.Conn]struct{} // guarded by mu
}

// RawUpstream accepts connections on 127.0.0.1 port 0 and runs serve on each
// in its own goroutine; the connection is closed when serve returns. When the
// test ends the listener and every open connection are closed, which unblocks
// a serve that reads or writes; a serve blocked on anything else must be
// released by the test.
func RawUpstream(t testing.TB, serve func(net.Conn)) *RawServer {
	t.Helper()
	ln := ListenTCP(t)
	s := &RawServer{Addr: ln.Addr().String(), open: make(map[net.Conn]struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open[c] = struct{}{}
			s.mu.Unlock()
			go func() {
				defer func() {
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
					c.Close()
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

// ConnCount returns how many connections the server has accepted.
func (s *RawServer) ConnCount() int64 { return s.conns.Load() }

// ReadRequest reads one request head from br and discards its body, for raw
// upstreams that must let the client finish sending before misbehaving.
func ReadRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return nil, err
	}
	return req, nil
}

// Reset closes c with an RST instead of a FIN (SO_LINGER 0).
func Reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
