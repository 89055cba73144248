// Command idleconns opens many idle keep-alive connections to a proxy, so
// that the proxy's memory per idle connection can be measured.
//
// Each connection sends one GET request, reads the whole response, checks
// that it is a 200 that keeps the connection open, and then stays idle.
// By default the connections are plaintext HTTP/1.1. With -tls http/1.1 or
// -tls h2 they are TLS connections (certificates are not verified: the
// bench's are throwaway ones) that must negotiate that protocol with ALPN;
// an h2 connection sends its request as one HTTP/2 stream and then stays
// open with no stream.
// When every connection is open, idleconns prints "ready <n>" on stdout and
// holds the connections until it receives SIGINT or SIGTERM or -hold passes. It exits non-zero, naming the
// failure, if any connection cannot be opened or answered.
//
// Usage:
//
//	idleconns -addr 127.0.0.1:18081 -n 10000
//	idleconns -addr 127.0.0.1:18085 -n 2000 -tls h2
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

func main() {
	addr := flag.String("addr", "", "host:port of the proxy (required)")
	n := flag.Int("n", 10000, "number of idle connections to open")
	concurrency := flag.Int("concurrency", 64, "connections being opened at once")
	path := flag.String("path", "/", "request path of the one request sent on each connection")
	hold := flag.Duration("hold", 5*time.Minute, "longest time to hold the connections open")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline for opening one connection and reading its response")
	mode := flag.String("tls", "", `"" for plaintext HTTP/1.1, "http/1.1" or "h2" for that protocol over TLS`)
	flag.Parse()
	if *addr == "" || *n <= 0 || *concurrency <= 0 {
		fmt.Fprintln(os.Stderr, "idleconns: -addr is required, and -n and -concurrency must be positive")
		os.Exit(2)
	}
	if *mode != "" && *mode != "http/1.1" && *mode != "h2" {
		fmt.Fprintf(os.Stderr, "idleconns: -tls %q: want \"\", \"http/1.1\" or \"h2\"\n", *mode)
		os.Exit(2)
	}

	conns, err := openAll(*addr, *path, *mode, *n, *concurrency, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		closeAll(conns)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", len(conns))

	waitForRelease(*hold)
	closeAll(conns)
}

// openAll opens n keep-alive connections to addr in mode (see openOne), at
// most concurrency at a time, each having completed one request. On error it
// returns the connections opened so far along with the first error.
func openAll(addr, path, mode string, n, concurrency int, timeout time.Duration) ([]io.Closer, error) {
	conns := make([]io.Closer, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conns[i], errs[i] = openOne(addr, path, mode, timeout)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()

	opened := make([]io.Closer, 0, n)
	var first error
	failed := 0
	for i, c := range conns {
		if c != nil {
			opened = append(opened, c)
		}
		if errs[i] != nil {
			failed++
			if first == nil {
				first = errs[i]
			}
		}
	}
	if first != nil {
		return opened, fmt.Errorf("%d of %d connections failed, first: %w", failed, n, first)
	}
	return opened, nil
}

// openOne dials addr and sends one GET for path, in plaintext HTTP/1.1 if
// mode is "", else over TLS with mode ("http/1.1" or "h2") as the only ALPN
// protocol offered and required. The response must be a 200 that leaves the
// connection open (over HTTP/1.1, with nothing after its body). It returns
// what closes the connection.
func openOne(addr, path, mode string, timeout time.Duration) (io.Closer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &net.Dialer{}
	var c net.Conn
	var err error
	if mode == "" {
		c, err = d.DialContext(ctx, "tcp", addr)
	} else {
		td := &tls.Dialer{NetDialer: d, Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{mode}}}
		c, err = td.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		c.Close()
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		if got := tc.ConnectionState().NegotiatedProtocol; got != mode {
			c.Close()
			return nil, fmt.Errorf("negotiated ALPN protocol %q, want %q", got, mode)
		}
	}
	if mode == "h2" {
		return exchangeH2(c, addr, path)
	}
	request := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: sluice-idleconns\r\n\r\n"
	if err := exchange(c, []byte(request)); err != nil {
		c.Close()
		return nil, err
	}
	return c, c.SetDeadline(time.Time{})
}

// exchangeH2 starts an HTTP/2 connection on c (deadline set) and sends one
// GET for path, which must be answered 200. It returns the client
// connection, whose Close closes c, with the deadline cleared.
func exchangeH2(c net.Conn, addr, path string) (io.Closer, error) {
	cc, err := (&http2.Transport{}).NewClientConn(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("http2 client connection: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		cc.Close()
		return nil, err
	}
	req.Header.Set("User-Agent", "sluice-idleconns")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		cc.Close()
		return nil, fmt.Errorf("http2 request: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d, want 200", resp.StatusCode)
	}
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		cc.Close()
		return nil, err
	}
	return cc, nil
}

func exchange(c net.Conn, request []byte) error {
	if _, err := c.Write(request); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read response body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, want 200", resp.StatusCode)
	}
	if resp.Close {
		return errors.New("response closes the connection, want keep-alive")
	}
	if br.Buffered() != 0 {
		return fmt.Errorf("%d unexpected bytes after the response", br.Buffered())
	}
	return nil
}

// waitForRelease blocks until SIGINT or SIGTERM arrives or hold passes.
func waitForRelease(hold time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(hold):
	}
}

func closeAll(conns []io.Closer) {
	for _, c := range conns {
		c.Close()
	}
}
