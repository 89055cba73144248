// Package conn holds a downstream connection as network filters see it and
// the network filter manager that runs them: read filters in config order on
// every read, write filters in reverse order on every write, and the
// terminal filter serving the resulting byte stream.
//
// A Conn is driven by one goroutine (the one running Run). Close, SetIdle's
// counterpart Wake, and the tracker's drain may be called from others.
package conn

import (
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/internal/writeread"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// pastDeadline wakes a blocked read at once.
var pastDeadline = time.Unix(1, 0)

// Conn is one downstream connection. It implements netfilter.Conn.
type Conn struct {
	// Stats, when set before Run, count the connection on its listener.
	Stats *stats.ListenerStats

	// Immutable after New:
	nc      net.Conn
	rd      func([]byte) (int, error) // reads the transport (may hold peeked bytes)
	info    netfilter.Info
	tracker *Tracker
	log     *zap.Logger

	// Owned by the connection's goroutine:
	readFilters  []netfilter.ReadFilter
	writeFilters []netfilter.WriteFilter
	filters      []netfilter.Filter
	terminal     netfilter.Terminal
	rbuf, wbuf   buffer.Buffer
	resume       chan struct{}
	parked       bool
	start        time.Time
	unread       []byte          // read while waiting for a parked TLS connection
	wr           *writeread.Conn // write-then-read state, made on first use, dropped when parked
	wrOK         bool            // a plain TCP connection without network filters: WriteOnRead works
	pending      []byte          // written by the next Read (WriteOnRead)

	// Accessed atomically, for the parker:
	parkFD atomic.Int32 // the socket while parked in the parker's set, else -1
	// peer-close watch (peerwatch.go)
	peerWatch    atomic.Uint64          // the watch's token; 0: none, or it fired
	peerAbort    atomic.Pointer[func()] // the watch's abort
	peerSeq      uint64                 // the last token; the connection's goroutine's
	peerSwept    uint64                 // the token the last sweep saw; the sweep's
	readDeadline atomic.Int64           // UnixNano of the read deadline, 0 for none

	// Accessed atomically:
	idle      atomic.Bool
	closed    atomic.Bool
	handedOff atomic.Bool // the socket went to the next generation
}

// New wraps nc. read, when non-nil, replaces nc.Read (a listener that peeked
// passes a reader that serves the peeked bytes first).
func New(nc net.Conn, read func([]byte) (int, error), info netfilter.Info, t *Tracker, log *zap.Logger) *Conn {
	c := &Conn{nc: nc, rd: read, info: info, tracker: t, log: log}
	c.parkFD.Store(-1)
	if c.rd == nil {
		c.rd = nc.Read
		_, c.wrOK = nc.(*net.TCPConn)
	}
	return c
}

// Run builds the connection's network filters from factories, runs them,
// and closes the connection when the terminal filter returns.
func (c *Conn) Run(factories []netfilter.Factory) {
	if !c.tracker.add(c) {
		c.nc.Close()
		return
	}
	if c.Stats != nil {
		// A connection handed over by the previous generation was
		// counted there; it is active here, and its length runs from now.
		c.start = time.Now()
		if !c.info.Adopted {
			c.Stats.DownstreamCxTotal.Inc()
		}
		c.Stats.DownstreamCxActive.Inc()
	}
	for _, f := range factories {
		inst := f.NewFilter(c)
		c.filters = append(c.filters, inst)
		if r, ok := inst.(netfilter.ReadFilter); ok {
			c.readFilters = append(c.readFilters, r)
		}
		if w, ok := inst.(netfilter.WriteFilter); ok {
			c.writeFilters = append(c.writeFilters, w)
		}
		if t, ok := inst.(netfilter.Terminal); ok {
			c.terminal = t
		}
	}
	if len(c.readFilters) > 0 || len(c.writeFilters) > 0 {
		c.wrOK = false // the filters see every byte through Read and Write
	}
	for _, r := range c.readFilters {
		if r.OnNewConnection() == netfilter.StopIteration && !c.wait() {
			c.tracker.remove(c)
			c.Close()
			return
		}
	}
	c.serve()
}

// serve runs the terminal filter until it returns. If it parked the
// connection, a new goroutine waits for the socket and serves again;
// otherwise the connection ends.
func (c *Conn) serve() {
	parked := false
	defer func() {
		if r := recover(); r != nil {
			// Bad input must never take the worker down: log and close.
			c.log.Error("connection panicked", zap.Uint64("conn", c.info.ID), zap.Any("panic", r), zap.Stack("stack"))
			parked = false
		}
		if parked {
			// Past this point another goroutine may be serving c.
			// (A TLS connection is checked for records it holds on
			// the goroutine that waits for it: see resumeWhenReadable.)
			if _, isTLS := c.nc.(*tls.Conn); isTLS {
				go c.resumeWhenReadable()
			} else if p := getParker(); p == nil || !p.add(c, c.sysFD()) {
				go c.resumeWhenReadable()
			}
			return
		}
		c.tracker.remove(c)
		c.Close()
	}()
	if c.terminal != nil {
		c.terminal.Serve(c)
	}
	parked = c.parked && !c.closed.Load()
	c.parked = false
}

// socket returns the connection's socket: the connection under TLS for a
// TLS connection.
func (c *Conn) socket() net.Conn {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c.nc
}

// sysFD returns the socket descriptor of the connection, or -1 where it
// has none (or may hold bytes read ahead of its socket). For a TLS
// connection it is the descriptor of the connection under TLS: parking on
// it is right only once the TLS connection was found to hold no records it
// read (see resumeWhenReadable).
func (c *Conn) sysFD() int32 {
	sc, ok := c.socket().(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := int32(-1)
	_ = rc.Control(func(f uintptr) { fd = int32(f) })
	return fd
}

// resumeWhenReadable waits, on a fresh goroutine with a small stack, for the parked
// connection's socket to become readable (or its read deadline to pass),
// then serves it again.
func (c *Conn) resumeWhenReadable() {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		// A TLS connection may hold records it already read, which its
		// socket's readiness does not show: a read that may not wait
		// takes them first. With none, the connection parks in the
		// parker's set on the socket under TLS, like any other.
		var b [1]byte
		if tc, isTLS := c.nc.(*tls.Conn); isTLS {
			if p := getParker(); p != nil && len(c.unread) == 0 {
				_ = tc.SetReadDeadline(pastDeadline)
				n, err := tc.Read(b[:])
				c.restoreReadDeadline()
				if n == 1 {
					c.unread = append(c.unread[:0], b[0])
					c.serve()
					return
				}
				if errors.Is(err, os.ErrDeadlineExceeded) && p.add(c, c.sysFD()) {
					return
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					c.serve() // the terminal filter reads the error again
					return
				}
			}
		}
		// Otherwise wait in a read of one byte, which the next Read
		// returns first.
		if n, _ := c.nc.Read(b[:]); n == 1 {
			c.unread = append(c.unread[:0], b[0])
		}
		c.serve()
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		var b [1]byte
		_ = rc.Read(func(fd uintptr) bool {
			// Peek: wait (return false) only while nothing is there;
			// data, EOF or an error end the wait, as do the read
			// deadline and a close (rc.Read returns then).
			_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return err != unix.EAGAIN
		})
	}
	c.serve()
}

// Park implements netfilter.Conn.
func (c *Conn) Park() {
	c.parked = true
	if c.pending == nil {
		c.wr = nil // an idle connection keeps no write-read state
	}
}

// wait parks until ContinueReading or the connection closes.
func (c *Conn) wait() bool {
	if c.resume == nil {
		return false
	}
	_, ok := <-c.resume
	return ok && !c.closed.Load()
}

// netfilter.Callbacks

// Conn implements netfilter.Callbacks.
func (c *Conn) Conn() netfilter.Conn { return c }

// ContinueReading implements netfilter.Callbacks.
func (c *Conn) ContinueReading() {
	if c.resume == nil {
		return
	}
	select {
	case c.resume <- struct{}{}:
	default:
	}
}

// netfilter.Conn

// Info implements netfilter.Conn.
func (c *Conn) Info() *netfilter.Info { return &c.info }

// Read implements netfilter.Conn: it reads the transport and passes the
// bytes through the read filters.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	if c.pending != nil {
		return c.writeRead(p)
	}
	if len(c.readFilters) == 0 {
		return c.rd(p)
	}
	for c.rbuf.Len() == 0 {
		n, err := c.rd(p)
		c.rbuf.Append(p[:n])
		end := err != nil
		for _, r := range c.readFilters {
			if r.OnData(&c.rbuf, end) == netfilter.StopIteration {
				c.rbuf.Reset()
				break
			}
		}
		if err != nil && c.rbuf.Len() == 0 {
			return 0, err
		}
	}
	n := copy(p, c.rbuf.Bytes())
	c.rbuf.Drain(n)
	return n, nil
}

// CanWriteOnRead implements netfilter.WriteOnReader.
func (c *Conn) CanWriteOnRead() bool { return c.wrOK && len(c.unread) == 0 }

// WriteOnRead implements netfilter.WriteOnReader: on a plain TCP
// connection without network filters, the next Read writes b first, then
// waits for readability before its first read(2) (package writeread): the
// answer to b cannot be there before b is out. It reports false, taking
// nothing, where that cannot be done; the caller then writes b itself. b
// must stay unchanged until the next Read, which returns the write's error
// if it fails, or FlushWrite.
func (c *Conn) WriteOnRead(b []byte) bool {
	if !c.CanWriteOnRead() || len(b) == 0 {
		return false
	}
	if c.wr == nil {
		if c.wr = writeread.New(c.nc); c.wr == nil {
			c.wrOK = false
			return false
		}
	}
	c.pending = b
	return true
}

// FlushWrite implements netfilter.WriteOnReader.
func (c *Conn) FlushWrite() error { return c.flushPending() }

// writeRead is Read with a pending write.
func (c *Conn) writeRead(p []byte) (int, error) {
	b := c.pending
	c.pending = nil
	n, err, werr := c.wr.WriteRead(b, p)
	if werr != nil {
		return 0, werr
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// Bytes the client sent before the write (a pipelined request)
		// do not end the wait: look once, and if some were there, read
		// this connection the plain way from now on.
		if n := c.wr.TryRead(p); n > 0 {
			c.wr, c.wrOK = nil, false
			return n, nil
		}
	}
	return n, err
}

// flushPending writes what WriteOnRead left for a Read that did not come.
func (c *Conn) flushPending() error {
	if c.pending == nil {
		return nil
	}
	b := c.pending
	c.pending = nil
	_, err := c.nc.Write(b)
	return err
}

// Write implements netfilter.Conn: the bytes pass through the write filters
// in reverse order.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.flushPending(); err != nil {
		return 0, err
	}
	if len(c.writeFilters) == 0 {
		return c.nc.Write(p)
	}
	c.wbuf.Reset()
	c.wbuf.Append(p)
	for i := len(c.writeFilters) - 1; i >= 0; i-- {
		if c.writeFilters[i].OnWrite(&c.wbuf, false) == netfilter.StopIteration {
			return len(p), nil
		}
	}
	if _, err := c.nc.Write(c.wbuf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements netfilter.Conn. It is safe from any goroutine.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if p := theParker.Load(); p != nil && p.take(c) {
		// Parked: no goroutine will serve it again to leave the tracker.
		defer c.tracker.remove(c)
	}
	if c.Stats != nil && !c.start.IsZero() {
		c.Stats.DownstreamCxActive.Dec()
		if !c.handedOff.Load() { // else it lives on in the next generation
			c.Stats.DownstreamCxDestroy.Inc()
			c.Stats.DownstreamCxLengthMs.Record(time.Since(c.start))
		}
	}
	err := c.nc.Close()
	for _, f := range c.filters {
		f.OnEvent(netfilter.LocalClose)
	}
	if c.resume != nil {
		close(c.resume)
	}
	return err
}

// CloseWrite implements netfilter.Conn.
func (c *Conn) CloseWrite() error {
	_ = c.flushPending()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SetReadDeadline implements netfilter.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		c.readDeadline.Store(0)
	} else {
		c.readDeadline.Store(t.UnixNano())
	}
	return c.nc.SetReadDeadline(t)
}

// restoreReadDeadline sets the socket's read deadline back to the one
// last set through SetReadDeadline.
func (c *Conn) restoreReadDeadline() {
	var t time.Time
	if d := c.readDeadline.Load(); d != 0 {
		t = time.Unix(0, d)
	}
	_ = c.nc.SetReadDeadline(t)
}

// SetWriteDeadline implements netfilter.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// SetIdle implements netfilter.Conn.
func (c *Conn) SetIdle(idle bool) { c.idle.Store(idle) }

// Draining implements netfilter.Conn.
func (c *Conn) Draining() bool { return c.tracker.draining.Load() }

// CanHandoff implements netfilter.Conn. A connection whose listener
// filters consumed a header (PROXY protocol) cannot move: the next
// generation would run them again on a stream without it.
func (c *Conn) CanHandoff() bool {
	_, raw := c.nc.(*net.TCPConn)
	return raw && c.tracker.handoff != nil && len(c.readFilters) == 0 && len(c.writeFilters) == 0 &&
		!c.info.HeaderConsumed
}

// Handoff implements netfilter.Conn: it duplicates the socket and gives it,
// with readAhead, to the tracker's handoff function. Closing this process's
// descriptor afterwards sends nothing to the peer: the socket lives on in
// the receiving process.
func (c *Conn) Handoff(readAhead []byte) bool {
	if !c.CanHandoff() {
		return false
	}
	if err := c.flushPending(); err != nil {
		c.log.Debug("handoff: flush failed", zap.Uint64("conn", c.info.ID), zap.Error(err))
		return false
	}
	f, err := c.nc.(*net.TCPConn).File()
	if err != nil {
		c.log.Warn("cannot hand off connection", zap.Uint64("conn", c.info.ID), zap.Error(err))
		return false
	}
	defer f.Close()
	// The next generation adopts it on the listener whose socket accepted
	// it, which runs the use_original_dst hand-over again.
	name := c.info.Socket
	if name == "" {
		name = c.info.Listener
	}
	if err := c.tracker.handoff(name, f, readAhead); err != nil {
		// Not at a shutdown, where nobody takes connections: a client
		// of a restart loses its connection here.
		if !errors.Is(err, ErrNoTaker) {
			c.log.Warn("cannot hand off connection", zap.Uint64("conn", c.info.ID), zap.Error(err))
		}
		return false
	}
	c.handedOff.Store(true)
	c.log.Debug("connection handed off", zap.Uint64("conn", c.info.ID), zap.Int("read_ahead", len(readAhead)))
	return true
}

// HandoffFunc moves a connection's socket (and its read-ahead bytes) to
// another process. It must not retain f, which the caller closes, nor
// readAhead after it returns. It returns ErrNoTaker (or an error wrapping
// it) when nobody takes connections, as in a drain for a shutdown.
type HandoffFunc func(listener string, f *os.File, readAhead []byte) error

// ErrNoTaker is what a HandoffFunc returns when no generation takes
// connections: the drain closes them, as it would without a HandoffFunc.
var ErrNoTaker = errors.New("conn: no generation takes connections")

// Tracker keeps a generation's live connections so that a drain can reach
// them. It is safe for concurrent use.
type Tracker struct {
	handoff    HandoffFunc // nil: connections close when drained
	draining   atomic.Bool
	policy     DrainPolicy // set before Drain
	drainStart time.Time   // set by Drain before draining is stored

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	pending int           // accepted, not yet running (see Accepted)
	done    chan struct{} // closed when draining and the last connection ends

	peerWatches atomic.Int64 // peer-close watches under way (peerwatch.go)
	peerSweepOn atomic.Bool  // the sweep's timer is armed
}

// NewTracker returns an empty tracker. handoff may be nil.
func NewTracker(handoff HandoffFunc) *Tracker {
	return &Tracker{handoff: handoff, conns: map[*Conn]struct{}{}, done: make(chan struct{}),
		policy: DrainPolicy{Gradual: true, Timeout: 600 * time.Second}}
}

// DrainPolicy says how connections that cannot be handed to the next
// generation leave a draining one (Envoy's drain strategy).
type DrainPolicy struct {
	// Gradual: each response asks for a close with a probability that grows
	// from 0 at the start of the drain to 1 at half its timeout; otherwise
	// (immediate) every response does.
	Gradual bool
	// Timeout is the drain timeout.
	Timeout time.Duration
	// Jitter spreads closes so that clients do not reconnect in a storm:
	// idle connections close at a random point within it from the start of
	// the drain, and what is left at the timeout closes over its last
	// Jitter.
	Jitter time.Duration
}

// SetDrainPolicy sets the policy; call it before Drain.
func (t *Tracker) SetDrainPolicy(p DrainPolicy) { t.policy = p }

// DrainClose implements netfilter.Conn: whether the drain wants the
// connection closed after its current response.
func (c *Conn) DrainClose() bool { return c.tracker.drainClose() }

func (t *Tracker) drainClose() bool {
	if !t.draining.Load() {
		return false
	}
	if !t.policy.Gradual || t.policy.Timeout <= 0 {
		return true
	}
	elapsed := time.Since(t.drainStart)
	horizon := t.policy.Timeout / 2
	return elapsed >= horizon || rand.Int64N(int64(horizon)) < int64(elapsed)
}

// Accepted counts a connection accepted (or adopted) but not yet running,
// so that a drain does not end while it is on its way: a connection
// accepted as the drain starts is served or handed off, never dropped. Each
// Accepted is matched by the connection's Run or by Abandon.
func (t *Tracker) Accepted() {
	t.mu.Lock()
	t.pending++
	t.mu.Unlock()
}

// Abandon matches Accepted for a connection that closes before Run (a
// listener filter or the filter-chain match rejected it).
func (t *Tracker) Abandon() {
	t.mu.Lock()
	t.pending--
	last := t.emptyLocked() && t.draining.Load()
	t.mu.Unlock()
	if last {
		t.closeDone()
	}
}

func (t *Tracker) add(c *Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending--
	select {
	case <-t.done:
		return false // drained already: the worker is exiting
	default:
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Tracker) remove(c *Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	last := t.emptyLocked() && t.draining.Load()
	t.mu.Unlock()
	if last {
		t.closeDone()
	}
}

func (t *Tracker) emptyLocked() bool { return len(t.conns) == 0 && t.pending <= 0 }

func (t *Tracker) closeDone() {
	select {
	case <-t.done:
	default:
		close(t.done)
	}
}

// Draining reports whether a drain has started.
func (t *Tracker) Draining() bool { return t.draining.Load() }

// Len returns the number of live connections.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// Drain marks every connection draining and wakes the idle ones, whose
// terminal filters then end them. It returns a channel closed when the last
// connection is gone.
func (t *Tracker) Drain() <-chan struct{} {
	if t.drainStart.IsZero() {
		t.drainStart = time.Now()
	}
	t.draining.Store(true)
	t.mu.Lock()
	for c := range t.conns {
		if !c.idle.Load() {
			continue
		}
		if c.CanHandoff() || t.policy.Jitter <= 0 {
			t.wake(c) // hand it off (or close it) now
			continue
		}
		// An idle connection that must close: at a random point of the
		// jitter, so that its client's reconnection is spread too.
		time.AfterFunc(rand.N(t.policy.Jitter), func() {
			if c.idle.Load() {
				t.wake(c)
			}
		})
	}
	empty := t.emptyLocked()
	t.mu.Unlock()
	if empty {
		t.closeDone()
	}
	return t.done
}

// wake makes an idle connection's terminal filter look at the drain: a
// parked connection is served again, a blocked read sees a past deadline.
func (t *Tracker) wake(c *Conn) {
	if p := theParker.Load(); p != nil && p.take(c) {
		go c.serve()
	} else {
		_ = c.nc.SetReadDeadline(pastDeadline)
	}
}

// CloseSpread closes every connection, each at a random point within
// window, and returns when the last is closed.
func (t *Tracker) CloseSpread(window time.Duration) {
	if window <= 0 {
		t.CloseAll()
		return
	}
	t.mu.Lock()
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		time.AfterFunc(rand.N(window), func() {
			defer wg.Done()
			c.Close()
		})
	}
	wg.Wait()
}

// CloseAll closes every connection.
func (t *Tracker) CloseAll() {
	t.mu.Lock()
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
