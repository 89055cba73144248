// Package pool keeps a worker's upstream connections to one host for reuse:
// HTTP/1.1 keep-alive connections (Get, Put) and multiplexed HTTP/2
// connections (RoundTrip, see http2.go).
//
// A Pool is per worker and per host; it is safe for concurrent use. Idle
// connections are reused last-in first-out, so that a quiet period lets the
// oldest expire. Checkout of an idle connection does one non-blocking peek
// that discards it if the upstream closed it or sent bytes on it after its
// last response (as Envoy closes an idle connection that receives data):
// those bytes would otherwise be read as the next request's response.
package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/internal/sockpeek"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Options configure a Pool.
type Options struct {
	Address        string
	ConnectTimeout time.Duration
	MaxIdle        int
	IdleTimeout    time.Duration
	// MaxConnectionDuration retires a connection this long after it was
	// opened (Envoy's max_connection_duration): an HTTP/1 one is not
	// handed out again and closes when put back or when the reaper finds
	// it idle; an HTTP/2 one takes no new stream and closes with its last.
	// Zero: no limit.
	MaxConnectionDuration time.Duration
	// Stats count connections (upstream_cx_*); nil counts nothing.
	Stats *stats.ClusterStats
	// TLS, when set, wraps every connection in a TLS client with this
	// config (its session cache lets reconnections resume).
	TLS *tls.Config
	// Connections is the max_connections circuit breaker of the cluster's
	// priority the pool serves, shared by every pool of that priority of
	// the cluster in every worker; MaxConnections its limit. A connection
	// (HTTP/1 or HTTP/2) holds one unit from its dial to its close; a
	// dial over the limit fails with ErrOverflow and counts Overflow. Nil
	// limits nothing.
	Connections    *hoststate.Breaker
	MaxConnections uint64
	Overflow       *stats.Counter
	// ServerNameTLS, when set (auto_sni), builds the TLS config of the
	// connections made for server name n; ForServerName then keeps a child
	// pool per name (see sni.go).
	ServerNameTLS func(n string) *tls.Config
}

// Conn is one upstream connection. It is owned by whoever checked it out
// until Put or Close.
type Conn struct {
	net.Conn
	// R reads responses; W is a scratch buffer for writing request heads.
	R *http1.Reader
	W []byte
	// Reused is true when the connection served an earlier request.
	Reused bool
	// Requests counts the requests sent on the connection, for
	// max_requests_per_connection; the user of the connection keeps it.
	Requests int
	// Abort fails a read or write under way at once, and every later one
	// (a past deadline on the net.Conn). Any goroutine may call it; the
	// connection is not reused after it. Made once per connection, so
	// that registering it (to abort when a downstream stream is reset)
	// allocates nothing.
	Abort func()

	idleSince time.Time
	born      time.Time // when it was opened, for MaxConnectionDuration
	rdl       time.Time // the read deadline last set through Conn
	pool      *Pool
	breaker   bool        // holds a unit of the connections breaker
	src       *sendReader // R's source (see WriteOnRead)
	watch     *bodyWatch  // WriteBody's, made by its first call
	peek      *sockpeek.Peeker
	// tls: the connection is TLS, whose socket may hold records that
	// are no response (TLS 1.3 session tickets sent after the
	// handshake), which no peek can tell from one.
	tls bool
}

// newConn wraps nc as a pool connection with its response reader.
func newConn(nc net.Conn, p *Pool, held bool) *Conn {
	src := newSendReader(nc)
	abort := func() { _ = nc.SetDeadline(time.Unix(1, 0)) }
	sock := nc
	tc, isTLS := nc.(*tls.Conn)
	if isTLS {
		// Any byte waiting on an idle TLS connection is a record we did
		// not ask for (close_notify, a ticket): treat it as closing.
		sock = tc.NetConn()
	}
	return &Conn{Conn: nc, R: http1.NewReader(src), Abort: abort, src: src, born: time.Now(), pool: p, breaker: held,
		peek: sockpeek.NewPeeker(sock), tls: isTLS}
}

// Close closes the connection for good.
func (c *Conn) Close() error {
	c.R.Release()
	if c.watch != nil {
		c.watch.t.Stop()
	}
	if c.breaker {
		c.breaker = false
		c.pool.release(true)
	}
	if st := c.pool.opts.Stats; st != nil {
		st.UpstreamCxActive.Dec()
	}
	return c.Conn.Close()
}

// DeadlineSlack is how much later than asked a read deadline set by
// SetReadDeadlineNear may end.
const DeadlineSlack = 10 * time.Millisecond

// SetReadDeadline sets the connection's read deadline (zero: none) and
// remembers it for SetReadDeadlineNear. Only the connection's owner calls
// it; another goroutine that must wake a blocked read calls Abort.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl = t
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets the connection's read and write deadlines (zero: none),
// as SetReadDeadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl = t
	return c.Conn.SetDeadline(t)
}

// SetReadDeadlineNear sets a read deadline between d and d+DeadlineSlack:
// it keeps the one set when that is in the range, and otherwise sets
// d+DeadlineSlack, so that a connection that serves request after request
// with the same timeout updates its timer about once per DeadlineSlack
// rather than once per request. A zero d sets no deadline.
func (c *Conn) SetReadDeadlineNear(d time.Time) error {
	if d.IsZero() {
		if c.rdl.IsZero() {
			return nil
		}
		return c.SetReadDeadline(d)
	}
	if !c.rdl.IsZero() && !c.rdl.Before(d) && c.rdl.Sub(d) <= DeadlineSlack {
		return nil
	}
	return c.SetReadDeadline(d.Add(DeadlineSlack))
}

// ErrConnect wraps connection failures (flag UF).
var ErrConnect = errors.New("pool: connect failed")

// ErrOverflow is returned by Dial when the cluster's max_connections
// circuit breaker is open (flag UO).
var ErrOverflow = errors.New("pool: max_connections circuit breaker open")

// Pool is a set of idle connections to one host.
type Pool struct {
	opts   Options
	dialer net.Dialer

	mu     sync.Mutex
	idle   []*Conn // stack: most recently used last
	closed bool
	reaper *time.Timer

	h2once sync.Once
	h2p    *h2pool

	sni sniPools // children by server name (auto_sni)

	// waiters counts the requests waiting for room under max_connections
	// (wait.go); room, made by the first, is closed to wake them.
	waiters atomic.Int32
	room    chan struct{}
	// open counts the pool's connections holding a unit of the
	// max_connections breaker (open or being dialled).
	open atomic.Int64
}

// New returns an empty pool.
func New(opts Options) *Pool {
	p := &Pool{opts: opts}
	p.dialer.Timeout = opts.ConnectTimeout
	// No TCP keepalive probes, as Envoy's default upstream connection
	// options (Go would set four socket options per connection); Go's
	// connections have TCP_NODELAY already.
	p.dialer.KeepAlive = -1
	return p
}

// Get returns an idle connection or dials a new one. The context bounds the
// dial.
func (p *Pool) Get(ctx context.Context) (*Conn, error) { return p.get(ctx, true, time.Now()) }

// GetAt is Get for a caller that read the clock just now: now, which must
// not be later than the present, judges how long a connection was idle.
func (p *Pool) GetAt(ctx context.Context, now time.Time) (*Conn, error) {
	return p.get(ctx, true, now)
}

// get is Get; count says whether a max_connections overflow counts.
func (p *Pool) get(ctx context.Context, count bool, now time.Time) (*Conn, error) {
	if c := p.IdleAt(now); c != nil {
		return c, nil
	}
	return p.dialConn(ctx, count)
}

// IdleAt returns an idle connection fit for reuse, or nil when the pool has
// none: it never dials. now is as for GetAt.
func (p *Pool) IdleAt(now time.Time) *Conn {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleSince)
		if idle > p.opts.IdleTimeout || p.tooOld(c.born, now) || c.peek.Peek() != sockpeek.Empty {
			c.Close()
			continue
		}
		c.Reused = true
		return c
	}
}

// DialStream opens a connection to the host for a byte stream its caller
// owns (tcp_proxy): TCP, then TLS with the cluster's tls table if it has
// one, within connect_timeout, counted in the cluster's upstream_cx stats
// as the pool's own connections are. The caller decrements
// upstream_cx_active when it closes the connection.
func (p *Pool) DialStream(ctx context.Context) (net.Conn, error) { return p.dial(ctx, p.opts.TLS) }

// Dial always opens a new connection (for a retry after a stale reuse).
func (p *Pool) Dial(ctx context.Context) (*Conn, error) { return p.dialConn(ctx, true) }

func (p *Pool) dialConn(ctx context.Context, count bool) (*Conn, error) {
	held, err := p.acquire(count)
	if err != nil {
		return nil, err
	}
	nc, err := p.dial(ctx, p.opts.TLS)
	if err != nil {
		p.release(held)
		return nil, err
	}
	return newConn(nc, p, held), nil
}

// acquire takes a unit of the max_connections breaker for a new
// connection and reports whether one is held (false without a breaker); a
// breaker at its limit counts Overflow (if count) and fails with
// ErrOverflow — unless the pool has no connection at all: as in Envoy, a
// pool may always open one, or a request waiting in it while other pools
// (other workers, the other priority's, other server names') hold every
// unit could never be served.
func (p *Pool) acquire(count bool) (bool, error) {
	b := p.opts.Connections
	if b == nil {
		return false, nil
	}
	if b.TryAcquire(p.opts.MaxConnections) {
		p.open.Add(1)
		return true, nil
	}
	if count && p.opts.Overflow != nil {
		p.opts.Overflow.Inc()
	}
	if p.open.CompareAndSwap(0, 1) {
		b.Acquire()
		return true, nil
	}
	return false, fmt.Errorf("%w: %s", ErrOverflow, p.opts.Address)
}

// release gives back the unit acquire took, if held, and wakes the
// requests waiting for one.
func (p *Pool) release(held bool) {
	if held {
		p.opts.Connections.Release()
		p.open.Add(-1)
		p.signal()
	}
}

// tooOld reports whether a connection opened at born has passed
// MaxConnectionDuration at now.
func (p *Pool) tooOld(born, now time.Time) bool {
	return p.opts.MaxConnectionDuration > 0 && now.Sub(born) >= p.opts.MaxConnectionDuration
}

// reapEvery is the reaper's interval: the idle timeout, or
// MaxConnectionDuration when shorter; zero when neither is set.
func (p *Pool) reapEvery() time.Duration {
	d, m := p.opts.IdleTimeout, p.opts.MaxConnectionDuration
	if d <= 0 || (m > 0 && m < d) {
		d = m
	}
	return d
}

// errConnectTimeout is the cause of a dial's context ending at
// ConnectTimeout (and not at the caller's deadline).
var errConnectTimeout = errors.New("pool: connect_timeout")

// dial connects to the host, with TLS when tc is set, and counts it.
// ConnectTimeout bounds the TCP connect and the TLS handshake together, as
// Envoy's connect_timeout does (its connection is connected once the
// handshake is done); either running out counts upstream_cx_connect_timeout.
func (p *Pool) dial(ctx context.Context, tc *tls.Config) (net.Conn, error) {
	st := p.opts.Stats
	start := time.Now()
	if st != nil {
		st.UpstreamCxTotal.Inc()
	}
	if p.opts.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, start.Add(p.opts.ConnectTimeout), errConnectTimeout)
		defer cancel()
	}
	nc, err := p.dialer.DialContext(ctx, "tcp", p.opts.Address)
	if err != nil {
		if st != nil {
			st.UpstreamCxConnectFail.Inc()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				st.UpstreamCxConnectTimeout.Inc()
			}
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrConnect, p.opts.Address, err)
	}
	if tc != nil {
		tlc := tls.Client(nc, tc)
		if err := tlc.HandshakeContext(ctx); err != nil {
			nc.Close()
			if st != nil {
				st.UpstreamCxConnectFail.Inc()
				if context.Cause(ctx) == errConnectTimeout {
					st.UpstreamCxConnectTimeout.Inc()
				}
			}
			return nil, fmt.Errorf("%w: %s: tls: %w", ErrConnect, p.opts.Address, err)
		}
		nc = tlc
	}
	if st != nil {
		st.UpstreamCxConnectMs.Record(time.Since(start))
		st.UpstreamCxActive.Inc()
	}
	return nc, nil
}

// Put returns a connection that finished a response cleanly and may be
// reused. The caller must not use c afterwards.
func (p *Pool) Put(c *Conn) { p.PutAt(c, time.Now()) }

// PutAt is Put for a caller that read the clock when the response ended:
// the connection is idle from now.
func (p *Pool) PutAt(c *Conn, now time.Time) {
	if len(c.R.Buffered()) != 0 { // unexpected bytes after a response
		c.Close()
		return
	}
	c.idleSince = now
	if p.tooOld(c.born, c.idleSince) {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.opts.MaxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	if every := p.reapEvery(); p.reaper == nil && every > 0 {
		p.reaper = time.AfterFunc(every, p.reap)
	}
	p.mu.Unlock()
	p.signal()
}

// Idle returns the number of idle connections.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// reap closes connections idle longer than IdleTimeout or older than
// MaxConnectionDuration.
func (p *Pool) reap() {
	now := time.Now()
	cutoff := now.Add(-p.opts.IdleTimeout)
	p.mu.Lock()
	var expired []*Conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if (p.opts.IdleTimeout > 0 && c.idleSince.Before(cutoff)) || p.tooOld(c.born, now) {
			expired = append(expired, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(p.idle) > 0 && !p.closed {
		p.reaper.Reset(p.reapEvery())
	} else {
		p.reaper = nil
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.Close()
	}
}

// Close closes every idle connection and every HTTP/2 connection; later
// Puts close their connection.
func (p *Pool) Close() {
	if h2p := p.closeIdle(); h2p != nil {
		h2p.close(false)
	}
	p.closeServerNames()
}

// closeIdle marks the pool closed, stops its reaper, closes its idle
// HTTP/1 connections and returns its HTTP/2 state (nil if none), for the
// caller to close abruptly or gracefully.
func (p *Pool) closeIdle() *h2pool {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	h2p := p.h2p
	if p.reaper != nil {
		p.reaper.Stop()
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	return h2p
}
