package pool

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// h2cUpstream serves h2c (prior knowledge) with one stream per connection;
// requests to /hold block until release is closed.
func h2cUpstream(t *testing.T, release <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &http2.Server{MaxConcurrentStreams: 1}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c, &http2.ServeConnOpts{Handler: h})
		}
	}()
	return ln.Addr().String()
}

// TestHTTP2ConnectionsCountAgainstMaxConnections: an HTTP/2 connection
// holds a unit of its pool's max_connections breaker from dial to close; a
// request that needs a new connection over the limit counts
// upstream_cx_overflow once and waits until its context ends or a stream
// is free, and the unit comes back when the pool closes.
func TestHTTP2ConnectionsCountAgainstMaxConnections(t *testing.T) {
	r, err := hoststate.New(hoststate.Options{Slots: 16, Workers: 1, ArenaWords: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rec, err := r.AddCluster("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	addr := h2cUpstream(t, release)
	b := rec.PriorityBreaker(hoststate.PriorityHigh, hoststate.Connections)
	overflow := (*stats.Slab)(nil).Counter("upstream_cx_overflow")
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 1, IdleTimeout: time.Minute,
		Connections: &b, MaxConnections: 1, Overflow: overflow})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := func(path string) (*http.Response, error) {
		rq, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p.RoundTrip(rq, 0)
	}
	held, err := req("/hold")
	if err != nil {
		t.Fatal(err)
	}
	if n := b.Count(); n != 1 {
		t.Fatalf("breaker count with one connection = %d, want 1", n)
	}
	// The connection takes one stream at a time (its SETTINGS came before
	// the held response's head): a second request needs a second
	// connection, which the breaker refuses, so it waits, pending, until its
	// context ends.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	rq, err := http.NewRequestWithContext(short, "GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := p.RoundTrip(rq, 0); !errors.Is(err, ErrPendingTimeout) {
		if resp != nil {
			resp.Body.Close()
		}
		t.Fatalf("second request with the connection busy: err = %v, want ErrPendingTimeout", err)
	}
	cancelShort()
	if n := overflow.Value(); n != 1 {
		t.Fatalf("upstream_cx_overflow = %d after one request waited, want 1", n)
	}
	if rec.Breaker(hoststate.Connections).Count() != 0 {
		t.Fatal("an HTTP/2 connection of the high pool counted against the default priority")
	}
	// A waiting request takes the stream the held one gives back, on the
	// same connection.
	got := make(chan error, 1)
	go func() {
		resp, err := req("/")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		got <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); p.waiters.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the third request is not waiting")
		}
		time.Sleep(time.Millisecond) // polling the pool's waiter count
	}
	close(release)
	_, _ = io.Copy(io.Discard, held.Body)
	held.Body.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the waiting request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request did not get the freed stream")
	}
	if n := b.Count(); n != 1 {
		t.Fatalf("breaker count = %d, want 1 (the waiting request reused the connection)", n)
	}
	p.Close()
	if n := b.Count(); n != 0 {
		t.Fatalf("breaker count after close = %d, want 0", n)
	}
}
