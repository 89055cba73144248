// Package listener runs a worker's accept loop on a listening socket passed
// by the supervisor: it accepts, runs the listener filters, picks the filter
// chain and hands the connection to package conn.
package listener

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/conn"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tlsconn"
)

// Chain is a built filter chain.
type Chain struct {
	Name      string
	Factories []netfilter.Factory
	// TLS, when set, terminates TLS on the chain's connections.
	TLS *tls.Config
	// HandshakeTimeout bounds the TLS handshake.
	HandshakeTimeout time.Duration

	m *matcher
}

// NewChain builds a chain with its match criteria.
func NewChain(name string, match *config.FilterChainMatch, factories []netfilter.Factory) (*Chain, error) {
	m, err := newMatcher(match)
	if err != nil {
		return nil, err
	}
	return &Chain{Name: name, Factories: factories, m: m}, nil
}

// Listener is a built listener: immutable, shared by its accept loops.
type Listener struct {
	Name            string
	Cfg             *config.Listener
	ListenerFilters []netfilter.ListenerFilterFactory
	Chains          []*Chain
	// Default serves connections no chain matches; nil closes them.
	Default *Chain
	Tracker *conn.Tracker
	Log     *zap.Logger
	// Stats are the listener's stat handles.
	Stats *stats.ListenerStats
	// IDBase is OR-ed into connection ids so that ids are unique across
	// workers (the worker's slot in the high bits).
	IDBase uint64
	// Lookup, for a listener with use_original_dst, returns the listener
	// (bind_to_port = false) configured for an original destination, or
	// nil.
	Lookup func(netip.AddrPort) *Listener
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
		l.Tracker.Accepted()
		go l.Handle(nc, nil)
	}
}

// Adopt runs a connection handed over by a previous generation, as Handle
// does, with readAhead as the first bytes read; it is marked
// netfilter.Info.Adopted, so that it is not counted as a new connection.
// The caller has counted it with Tracker.Accepted.
func (l *Listener) Adopt(nc net.Conn, readAhead []byte) { l.handle(nc, readAhead, true) }

// Handle runs one connection; Serve calls it on a new goroutine per
// accepted connection. readAhead, when non-empty, holds bytes already read
// from nc by a previous generation: they are served first. The caller has
// counted the connection with Tracker.Accepted.
//
// With use_original_dst, a connection whose listener filters restored its
// local address is handed to the listener Lookup finds for that address:
// that listener's filters, filter chains and stats serve it.
func (l *Listener) Handle(nc net.Conn, readAhead []byte) { l.handle(nc, readAhead, false) }

func (l *Listener) handle(nc net.Conn, readAhead []byte, adopted bool) {
	running := false
	defer func() {
		if r := recover(); r != nil {
			// Bad input must never take the worker down: log and close.
			l.Log.Error("connection panicked", zap.String("listener", l.Name), zap.Any("panic", r), zap.Stack("stack"))
			nc.Close()
		}
		if !running {
			l.Tracker.Abandon()
		}
	}()
	info := netfilter.Info{
		ID:                l.IDBase | connIDs.Add(1),
		RemoteAddr:        addrPort(nc.RemoteAddr()),
		LocalAddr:         addrPort(nc.LocalAddr()),
		TransportProtocol: "raw_buffer",
		Listener:          l.Name,
		Socket:            l.Name,
		BufferLimit:       l.Cfg.PerConnectionBufferLimitBytes,
		Adopted:           adopted,
	}
	readAhead, ok := l.runListenerFilters(nc, readAhead, &info)
	if !ok {
		nc.Close()
		return
	}
	t := l
	if l.Cfg.UseOriginalDst && info.LocalAddrRestored && l.Lookup != nil {
		if v := l.Lookup(info.LocalAddr); v != nil && v != l {
			t = v
			info.Listener, info.BufferLimit = v.Name, v.Cfg.PerConnectionBufferLimitBytes
			if ce := l.Log.Check(zap.DebugLevel, "connection handed to listener"); ce != nil {
				ce.Write(zap.Uint64("conn", info.ID), zap.String("from", l.Name), zap.String("to", v.Name),
					zap.Stringer("original_dst", info.LocalAddr))
			}
			if readAhead, ok = v.runListenerFilters(nc, readAhead, &info); !ok {
				nc.Close()
				return
			}
		}
	}
	t.serve(nc, readAhead, &info, &running)
}

// runListenerFilters runs l's listener filters on nc within
// listener_filters_timeout (no limit when it is 0). It returns the bytes read ahead (readAhead
// and what the filters peeked), and false when a filter closed the
// connection.
func (l *Listener) runListenerFilters(nc net.Conn, readAhead []byte, info *netfilter.Info) ([]byte, bool) {
	if len(l.ListenerFilters) == 0 {
		return readAhead, true
	}
	pk := &peeker{nc: nc, buf: readAhead, info: info}
	if d := l.Cfg.ListenerFiltersTimeout.Duration; d > 0 {
		_ = nc.SetReadDeadline(time.Now().Add(d))
	}
	for _, f := range l.ListenerFilters {
		lf := f.NewFilter()
		st := netfilter.Continue
		if af, ok := lf.(netfilter.AdoptFilter); ok && info.Adopted {
			st = af.OnAdopt(pk)
		} else {
			st = lf.OnAccept(pk)
		}
		if st != netfilter.Continue && pk.timedOut && l.Stats != nil {
			l.Stats.DownstreamPreCxTimeout.Inc()
		}
		if st != netfilter.Continue && pk.timedOut && l.Cfg.ContinueOnListenerFiltersTimeout {
			// The rest of the filters would wait for bytes that do not
			// come either: on to chain matching with what is known.
			l.Log.Debug("listener filters timed out, continuing", zap.Uint64("conn", info.ID), zap.String("listener", l.Name))
			break
		}
		if st != netfilter.Continue {
			l.Log.Debug("listener filter closed connection", zap.Uint64("conn", info.ID), zap.String("listener", l.Name))
			return nil, false
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	return pk.buf, true
}

// serve picks l's filter chain for the connection, terminates TLS if the
// chain does, and runs the chain's network filters, setting *running
// before they run (a connection closed before is for the caller to
// abandon).
func (l *Listener) serve(nc net.Conn, readAhead []byte, info *netfilter.Info, running *bool) {
	chain := l.match(info)
	if chain == nil {
		l.Stats.NoFilterChainMatch.Inc()
		l.Log.Debug("no filter chain matched", zap.Uint64("conn", info.ID), zap.String("listener", l.Name),
			zap.String("sni", info.ServerName))
		nc.Close()
		return
	}
	info.FilterChain = chain.Name
	if ce := l.Log.Check(zap.DebugLevel, "filter chain chosen"); ce != nil {
		ce.Write(zap.Uint64("conn", info.ID), zap.String("listener", l.Name), zap.String("chain", chain.Name),
			zap.String("sni", info.ServerName), zap.String("transport", info.TransportProtocol))
	}
	var rd func([]byte) (int, error)
	var pr *prefixReader
	if len(readAhead) > 0 {
		pr = &prefixReader{pre: readAhead, nc: nc}
		rd = pr.Read
	}
	if chain.TLS != nil {
		tc := tls.Server(&prefixConn{Conn: nc, pr: pr}, chain.TLS)
		_ = nc.SetDeadline(time.Now().Add(chain.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			l.Log.Debug("tls handshake failed", zap.Uint64("conn", info.ID), zap.Error(err))
			nc.Close()
			return
		}
		_ = nc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		info.TLS = true
		info.TLSState = &st
		info.LocalCert = tlsconn.ServedLeaf(chain.TLS, st.ServerName)
		info.NegotiatedALPN = st.NegotiatedProtocol
		if info.ServerName == "" {
			info.ServerName = st.ServerName
		}
		nc, rd = tc, nil
	}
	c := conn.New(nc, rd, *info, l.Tracker, l.Log)
	c.Stats = l.Stats
	*running = true
	c.Run(chain.Factories)
}

// peeker gives listener filters the first bytes of a connection without
// consuming them.
type peeker struct {
	nc       net.Conn
	buf      []byte
	info     *netfilter.Info
	timedOut bool // a read ran into listener_filters_timeout
}

// Peek implements netfilter.ListenerCallbacks.
func (p *peeker) Peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		if cap(p.buf) < n {
			nb := make([]byte, len(p.buf), max(n, 512))
			copy(nb, p.buf)
			p.buf = nb
		}
		m, err := p.nc.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+m]
		if err != nil {
			p.timedOut = errors.Is(err, os.ErrDeadlineExceeded)
			return p.buf, err
		}
	}
	return p.buf, nil
}

// Consume implements netfilter.ListenerCallbacks.
func (p *peeker) Consume(n int) {
	if n > 0 {
		p.info.HeaderConsumed = true
	}
	p.buf = p.buf[min(n, len(p.buf)):]
}

// Info implements netfilter.ListenerCallbacks.
func (p *peeker) Info() *netfilter.Info { return p.info }

// SyscallConn implements syscall.Conn: listener filters that need the
// accepted socket itself (original_dst reads SO_ORIGINAL_DST) type-assert
// their callbacks to syscall.Conn. It fails when the connection has no
// socket (e.g. a pipe in tests).
func (p *peeker) SyscallConn() (syscall.RawConn, error) {
	sc, ok := p.nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("listener: connection has no socket")
	}
	return sc.SyscallConn()
}

// prefixConn is a net.Conn whose reads go through rd (peeked bytes first).
type prefixConn struct {
	net.Conn
	pr *prefixReader // nil: none
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.pr != nil {
		return c.pr.Read(p)
	}
	return c.Conn.Read(p)
}

// errReadAhead says a connection still holds bytes read ahead of its
// socket, which the socket's readiness does not show.
var errReadAhead = errors.New("listener: bytes read ahead pending")

// SyscallConn implements syscall.Conn once the bytes read ahead are
// consumed, so that an idle TLS connection can wait for its socket to
// become readable without a goroutine (conn's parker).
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	if c.pr != nil && len(c.pr.pre) > 0 {
		return nil, errReadAhead
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// addrPort returns a connection's address, an IPv4-mapped IPv6 address
// (an IPv4 peer of a dual-stack socket) as the IPv4 address it maps, as
// Envoy reports it: x-forwarded-for, access logs and chain matching see
// 192.0.2.1, not ::ffff:192.0.2.1.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		if ap.Addr().Is4In6() {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		return ap
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
