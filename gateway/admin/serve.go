package admin

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Timeouts of the admin server: a stalled or slow client cannot hold a
// connection for long.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// ErrNotLoopback is returned by Listen for a non-loopback address when
// non-loopback addresses are not allowed.
var ErrNotLoopback = errors.New("admin: address is not loopback")

// Listen opens the admin listener on addr (host:port), refusing a host that
// is not a loopback IP (or "localhost") unless allowNonLoopback is set.
func Listen(addr string, allowNonLoopback bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin: address %q: %w", addr, err)
	}
	if !allowNonLoopback && host != "localhost" {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%w: %q", ErrNotLoopback, addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Serve serves h on ln from its own goroutines, with the timeouts above,
// and returns at once. Stop it with the returned server's Shutdown or
// Close. It runs in the supervisor, which proxies no traffic, so a
// saturated data plane does not slow it down. errorLog may be nil.
func Serve(ln net.Listener, h http.Handler, errorLog *log.Logger) *http.Server {
	if errorLog == nil {
		errorLog = log.New(io.Discard, "", 0)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
	}
	go srv.Serve(ln)
	return srv
}
