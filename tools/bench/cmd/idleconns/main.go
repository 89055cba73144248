// Command idleconns opens many idle HTTP/1.1 keep-alive connections to a
// proxy, so that the proxy's memory per idle connection can be measured.
//
// Each connection sends one GET request, reads the whole response, checks
// that it is a 200 that keeps the connection open, and then stays idle.
// When every connection is open, idleconns prints "ready <n>" on stdout and
// holds the connections until it receives SIGINT or SIGTERM or -hold passes. It exits non-zero, naming the
// failure, if any connection cannot be opened or answered.
//
// Usage:
//
//	idleconns -addr 127.0.0.1:18081 -n 10000
package main

import (
	"bufio"
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
)

func main() {
	addr := flag.String("addr", "", "host:port of the proxy (required)")
	n := flag.Int("n", 10000, "number of idle connections to open")
	concurrency := flag.Int("concurrency", 64, "connections being opened at once")
	path := flag.String("path", "/", "request path of the one request sent on each connection")
	hold := flag.Duration("hold", 5*time.Minute, "longest time to hold the connections open")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline for opening one connection and reading its response")
	flag.Parse()
	if *addr == "" || *n <= 0 || *concurrency <= 0 {
		fmt.Fprintln(os.Stderr, "idleconns: -addr is required, and -n and -concurrency must be positive")
		os.Exit(2)
	}

	conns, err := openAll(*addr, *path, *n, *concurrency, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		closeAll(conns)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", len(conns))

	waitForRelease(*hold)
	closeAll(conns)
}

// openAll opens n keep-alive connections to addr, at most concurrency at a
// time, each having completed one request. On error it returns the
// connections opened so far along with the first error.
func openAll(addr, path string, n, concurrency int, timeout time.Duration) ([]net.Conn, error) {
	request := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: sluice-idleconns\r\n\r\n")
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conns[i], errs[i] = openOne(addr, request, timeout)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()

	opened := make([]net.Conn, 0, n)
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

// openOne dials addr, sends request and reads one response, which must be a
// 200 that leaves the connection open and has nothing after its body.
func openOne(addr string, request []byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if err := exchange(c, request, timeout); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func exchange(c net.Conn, request []byte, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
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
	return c.SetDeadline(time.Time{})
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

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
