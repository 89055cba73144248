// Package listener runs a worker's accept loop on a listening socket passed
// by the supervisor: it accepts, runs the listener filters, picks the filter
// chain and hands the connection to package conn.
package listener

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/conn"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Chain is a built filter chain.
type Chain struct {
	Name      string
	Factories []netfilter.Factory
}

// Listener is a built listener: immutable, shared by its accept loops.
type Listener struct {
	Name            string
	Cfg             *config.Listener
	ListenerFilters []netfilter.ListenerFilterFactory
	Chains          []*Chain
	Tracker         *conn.Tracker
	Log             *zap.Logger
	// IDBase is OR-ed into connection ids so that ids are unique across
	// workers (the worker's slot in the high bits).
	IDBase uint64
}

var connIDs atomic.Uint64

// Serve accepts on ln until it is closed; it then returns nil.
func (l *Listener) Serve(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: back off instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.Log.Warn("accept failed", zap.String("listener", l.Name), zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go l.Handle(nc, nil)
	}
}

// Handle runs one connection; Serve calls it on a new goroutine per
// accepted connection. readAhead, when non-empty, holds bytes already read
// from nc by a previous generation: they are served first.
func (l *Listener) Handle(nc net.Conn, readAhead []byte) {
	defer func() {
		if r := recover(); r != nil {
			// Bad input must never take the worker down: count and close.
			l.Log.Error("connection panicked", zap.String("listener", l.Name), zap.Any("panic", r), zap.Stack("stack"))
			nc.Close()
		}
	}()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	info := netfilter.Info{
		ID:                l.IDBase | connIDs.Add(1),
		RemoteAddr:        addrPort(nc.RemoteAddr()),
		LocalAddr:         addrPort(nc.LocalAddr()),
		TransportProtocol: "raw_buffer",
		Listener:          l.Name,
		BufferLimit:       l.Cfg.PerConnectionBufferLimitBytes,
	}
	chain := l.match(&info)
	if chain == nil {
		nc.Close()
		return
	}
	info.FilterChain = chain.Name
	var read func([]byte) (int, error)
	if len(readAhead) > 0 {
		read = (&prefixReader{pre: readAhead, nc: nc}).Read
	}
	conn.New(nc, read, info, l.Tracker, l.Log).Run(chain.Factories)
}

// match picks the filter chain for a connection. Until filter-chain match
// criteria exist, that is the first chain.
func (l *Listener) match(*netfilter.Info) *Chain {
	if len(l.Chains) == 0 {
		return nil
	}
	return l.Chains[0]
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// prefixReader serves pre before reading nc.
type prefixReader struct {
	pre []byte
	nc  net.Conn
}

func (r *prefixReader) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.nc.Read(p)
}
