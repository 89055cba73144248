package tcpproxy

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/lb"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// copyBufferSize is the size of each direction's copy buffer.
const copyBufferSize = 32 << 10

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, copyBufferSize)
	return &b
}}

// filter proxies one downstream connection. Serve runs on the connection's
// goroutine and copies downstream → upstream there; a second goroutine
// copies upstream → downstream, calling the connection's Write and
// CloseWrite (so write filters of a tcp_proxy chain run on that goroutine,
// never concurrently with each other). The idle timer runs checkIdle on a
// third.
type filter struct {
	f *Factory

	// Set by Serve before the copies start, then immutable:
	c     netfilter.Conn
	up    net.Conn
	timer *time.Timer

	// Accessed atomically:
	last    atomic.Int64 // time of the last byte moved, as time since sess.Start
	aborted atomic.Bool
	idled   atomic.Bool // closed by the idle timeout
	ended   atomic.Bool

	// Each byte count is written by its copying goroutine only, and the
	// whole record is read after both have finished.
	sess Session
}

// netfilter.Filter

// OnEvent implements netfilter.Filter; the copies see a close as an error.
func (p *filter) OnEvent(netfilter.Event) {}

// netfilter.Terminal

// Serve implements netfilter.Terminal: it connects upstream (up to
// max_connect_attempts hosts) and copies both ways until both directions
// ended, one of them failed, or the idle timeout passed. The manager closes
// the downstream connection when Serve returns.
func (p *filter) Serve(c netfilter.Conn) {
	f, s := p.f, &p.sess
	info := c.Info()
	s.ConnID, s.Start = info.ID, time.Now()
	s.Remote, s.Local, s.ServerName = info.RemoteAddr, info.LocalAddr, info.ServerName
	f.stats.DownstreamCxTotal.Add(1)
	defer p.finish()
	// Nothing before tcp_proxy sets a deadline the copies should keep.
	_ = c.SetReadDeadline(time.Time{})
	_ = c.SetWriteDeadline(time.Time{})

	up, host, cs := p.connect(info)
	if up == nil {
		return
	}
	defer host.End()
	if cs != nil {
		defer cs.UpstreamCxActive.Dec()
	}
	p.c, p.up = c, up
	if f.idleTimeout > 0 {
		p.timer = time.AfterFunc(math.MaxInt64, p.checkIdle)
		p.timer.Reset(f.idleTimeout)
		defer p.timer.Stop()
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.TxBytes = p.pump(c, up, f.stats.DownstreamCxTxBytesTotal, c.CloseWrite)
	}()
	s.RxBytes = p.pump(up, c, f.stats.DownstreamCxRxBytesTotal, func() error { return closeWrite(up) })
	<-done
	up.Close()
}

// connect picks the connection's cluster and dials its hosts, each picked
// afresh by the load balancer, until one answers or max_connect_attempts
// have failed. Every attempt counts in the cluster's upstream_cx_total, a
// failed one in upstream_cx_connect_fail (and _timeout), a connection made
// in upstream_cx_connect_ms and upstream_cx_active: the host's pool dials
// (pool.DialStream), with the cluster's TLS if it has a tls table. On success the host's Begin has been called, and the
// caller decrements the returned cluster stats' upstream_cx_active (if not
// nil) when the connection ends.
func (p *filter) connect(info *netfilter.Info) (net.Conn, *cluster.Host, *stats.ClusterStats) {
	f, s := p.f, &p.sess
	cl := f.pick()
	r := lb.Request{OriginalDst: info.OriginalDst()}
	s.Cluster = cl.name
	for s.ConnectAttempts < f.attempts {
		h, err := cl.pick(&r)
		if err != nil {
			s.NoHealthyUpstream = true
			f.stats.DownstreamCxNoRoute.Add(1)
			f.log.Debug("tcp_proxy: no upstream host", zap.Uint64("conn", s.ConnID), zap.Error(err))
			return nil, nil, nil
		}
		s.ConnectAttempts++
		// as in Envoy, the host tried last is recorded, also when its
		// connect fails (logged with UF)
		s.UpstreamHost = h.Address
		nc, err := h.Pool.DialStream(context.Background())
		if err == nil {
			h.Begin()
			return nc, h, cl.cs
		}
		f.stats.UpstreamCxConnectFail.Add(1)
		f.log.Debug("tcp_proxy: upstream connect failed", zap.Uint64("conn", s.ConnID),
			zap.String("cluster", cl.name), zap.String("host", h.Address), zap.Int("attempt", s.ConnectAttempts), zap.Error(err))
	}
	s.UpstreamConnectFailure = true
	f.stats.UpstreamConnectAttemptsExceeded.Add(1)
	return nil, nil, nil
}

// pump moves bytes from src to dst until src ends, then half-closes dst
// with closeWrite (the peer's FIN is passed on) and returns the bytes
// written. An error on either side, or a failed half-close, aborts the
// whole connection.
func (p *filter) pump(dst io.Writer, src io.Reader, total *stats.Counter, closeWrite func() error) uint64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n uint64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			p.touch()
			nw, werr := dst.Write(buf[:nr])
			n += uint64(nw)
			total.Add(uint64(nw))
			if werr == nil && nw < nr {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				p.abort()
				return n
			}
			p.touch()
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) || p.aborted.Load() || closeWrite() != nil {
				p.abort()
			}
			return n
		}
	}
}

// touch records activity for the idle timer.
func (p *filter) touch() {
	if p.timer != nil {
		p.last.Store(int64(time.Since(p.sess.Start)))
	}
}

// checkIdle runs when the idle timer fires: it closes the connection if
// nothing moved for idle_timeout, and otherwise re-arms the timer for the
// rest of the period.
func (p *filter) checkIdle() {
	if p.ended.Load() {
		return
	}
	idle := time.Since(p.sess.Start) - time.Duration(p.last.Load())
	if idle < p.f.idleTimeout {
		p.timer.Reset(p.f.idleTimeout - idle)
		return
	}
	if p.aborted.Load() {
		return
	}
	p.idled.Store(true)
	p.f.stats.IdleTimeout.Add(1)
	p.f.log.Debug("tcp_proxy: idle timeout", zap.Uint64("conn", p.sess.ConnID))
	p.abort()
}

// abort closes both connections, which ends both copies. It is safe from
// any goroutine and idempotent.
func (p *filter) abort() {
	if p.aborted.Swap(true) {
		return
	}
	p.up.Close()
	p.c.Close()
}

// finish completes the session record and hands it to the access log.
func (p *filter) finish() {
	p.ended.Store(true)
	s := &p.sess
	s.Duration = time.Since(s.Start)
	s.IdleTimedOut = p.idled.Load()
	if p.f.onEnd != nil {
		p.f.onEnd(s)
	}
}

// closeWrite half-closes an upstream connection.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

var _ netfilter.Terminal = (*filter)(nil)
