package pool

import (
	"sync"
)

// Pools per server name (auto_sni).
//
// A cluster with auto_sni sends each request's :authority host as the TLS
// server name, so a connection is only fit for requests to the name it was
// made for. Rather than keying every idle HTTP/1 connection and every
// HTTP/2 connection by name, a host's pool keeps one child pool per name:
// a full Pool (HTTP/1 keep-alive stack, HTTP/2 connections, learned ALPN
// protocol) with the same options except its TLS config. Children share
// the parent's statistics and max_connections breaker; closing the parent
// closes them.

// maxServerNames bounds the child pools of a host's pool per worker; a
// new name beyond it retires the least recently used child.
const maxServerNames = 128

// sniPools is a pool's children, by server name.
type sniPools struct {
	mu     sync.Mutex
	byName map[string]*sniChild
	tick   uint64
	closed bool
}

type sniChild struct {
	p    *Pool
	used uint64 // tick of the last lookup, for eviction
}

// ForServerName returns the pool of connections whose TLS server name is
// name: p itself when p has no ServerNameTLS option (no auto_sni), or when
// name is empty or p's own server name; else a child pool, created on first
// use.
func (p *Pool) ForServerName(name string) *Pool {
	if p.opts.ServerNameTLS == nil || name == "" || (p.opts.TLS != nil && name == p.opts.TLS.ServerName) {
		return p
	}
	s := &p.sni
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return p
	}
	s.tick++
	if c, ok := s.byName[name]; ok {
		c.used = s.tick
		s.mu.Unlock()
		return c.p
	}
	var evicted *Pool
	if len(s.byName) >= maxServerNames {
		var oldest string
		var at uint64
		for n, c := range s.byName {
			if oldest == "" || c.used < at {
				oldest, at = n, c.used
			}
		}
		evicted = s.byName[oldest].p
		delete(s.byName, oldest)
	}
	opts := p.opts
	opts.TLS = opts.ServerNameTLS(name)
	opts.ServerNameTLS = nil
	child := New(opts)
	if s.byName == nil {
		s.byName = make(map[string]*sniChild)
	}
	s.byName[name] = &sniChild{p: child, used: s.tick}
	s.mu.Unlock()
	if evicted != nil {
		evicted.retire()
	}
	return child
}

// closeServerNames closes every child pool.
func (p *Pool) closeServerNames() {
	s := &p.sni
	s.mu.Lock()
	s.closed = true
	children := s.byName
	s.byName = nil
	s.mu.Unlock()
	for _, c := range children {
		c.p.Close()
	}
}

// retire closes an evicted child without cutting its requests short: idle
// HTTP/1 connections close now and busy ones when put back; HTTP/2
// connections take no new stream and close once their streams are done.
func (p *Pool) retire() {
	if h2p := p.closeIdle(); h2p != nil {
		h2p.close(true)
	}
}

// ServerName returns the TLS server name p's connections are made with
// ("" for plaintext).
func (p *Pool) ServerName() string {
	if p.opts.TLS == nil {
		return ""
	}
	return p.opts.TLS.ServerName
}
