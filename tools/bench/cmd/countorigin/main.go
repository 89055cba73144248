// Command countorigin is a small HTTP/1.1 origin for the resilience
// benchmark (tools/bench/resilience.sh): it answers every request with a
// fixed 64-byte body and -status, and counts what it sees, so that a script
// can tell how many health checks, admitted requests or concurrent requests
// reached it through sluice.
//
// Requests whose path starts with /slow are held for -slow before the
// answer. GET /_stats (not counted) answers plain text, one counter a line
// (/_stats?reset=1 then sets inflight_max back to 0):
//
//	conns <connections accepted>
//	inflight_max <most /slow requests in flight at once>
//	path <path> <requests>
//
// Usage:
//
//	countorigin -listen 127.0.0.1:18221 [-status 503] [-slow 200ms]
//
// It prints "listening <addr>" on stderr once it accepts connections and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// body is the fixed 64-byte answer.
const body = "sluice-bench-countorigin-0123456789abcdefghijklmnopqrstuvwxyz-AB"

// origin holds the counters.
type origin struct {
	status   int
	slow     time.Duration
	conns    atomic.Int64 // connections accepted
	inflight atomic.Int64 // /slow requests being held
	maxIn    atomic.Int64 // most /slow requests held at once
	mu       sync.Mutex
	paths    map[string]*atomic.Int64 // requests by path
}

func main() {
	listen := flag.String("listen", "", "address to listen on, host:port (required)")
	status := flag.Int("status", 200, "status of every answer")
	slow := flag.Duration("slow", 200*time.Millisecond, "how long requests to /slow... are held")
	flag.Parse()
	if *listen == "" || *status < 200 || *status > 599 {
		fmt.Fprintln(os.Stderr, "countorigin: -listen is required and -status must be 200..599")
		os.Exit(2)
	}
	o := &origin{status: *status, slow: *slow, paths: map[string]*atomic.Int64{}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "countorigin: %v\n", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           o,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.conns.Add(1)
			}
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "countorigin: %v\n", err)
		os.Exit(1)
	}
}

// ServeHTTP counts the request by path and answers it.
func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_stats" {
		o.stats(w)
		if r.URL.Query().Has("reset") {
			o.maxIn.Store(0)
		}
		return
	}
	o.count(r.URL.Path)
	if strings.HasPrefix(r.URL.Path, "/slow") {
		n := o.inflight.Add(1)
		for {
			m := o.maxIn.Load()
			if n <= m || o.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-time.After(o.slow):
		case <-r.Context().Done():
		}
		o.inflight.Add(-1)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(o.status)
	w.Write([]byte(body))
}

// count adds one to path's counter.
func (o *origin) count(path string) {
	o.mu.Lock()
	c := o.paths[path]
	if c == nil {
		c = new(atomic.Int64)
		o.paths[path] = c
	}
	o.mu.Unlock()
	c.Add(1)
}

// stats writes the counters as text, paths sorted.
func (o *origin) stats(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "conns %d\ninflight_max %d\n", o.conns.Load(), o.maxIn.Load())
	o.mu.Lock()
	paths := make([]string, 0, len(o.paths))
	for p := range o.paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(w, "path %s %d\n", p, o.paths[p].Load())
	}
	o.mu.Unlock()
}
