package hcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tlsconn"
)

// Downstream HTTP/3.
//
// A udp listener's filter chain is one HTTP connection manager with TLS. The
// worker runs a quic.Transport on its UDP socket and quic-go's http3 server
// on it; each request stream runs on its own goroutine through the same
// stream code as an HTTP/2 stream (h2stream.go): the filter chain and the
// router see a request like any other, with StreamInfo.Protocol "HTTP/3".
// 0-RTT is off unless enable_early_data; then requests in early data that
// are not replay-safe get 425 Too Early. A drain, and max_connection_duration for one connection,
// send GOAWAY and let in-flight streams finish.
//
// quic-go's http3.Server sends GOAWAY only from Shutdown, and then to every
// connection it serves; it has no per-connection graceful close. So each
// QUIC connection gets its own http3.Server (a few hundred bytes next to the
// connection's own state): that server's Shutdown is the GOAWAY of exactly
// one connection. The HTTP3Server accepts connections itself and keeps the
// set of connections it serves, for a drain and for Close.

// protoHTTP3 is StreamInfo.Protocol of an HTTP/3 stream.
const protoHTTP3 = "HTTP/3"

// HTTP3Options are the downstream HTTP/3 (QUIC) settings.
type HTTP3Options struct {
	// MaxConcurrentStreams is the number of bidirectional streams a client
	// may open at once (default 100).
	MaxConcurrentStreams int64 `toml:"max_concurrent_streams"`
	// IdleTimeout closes a QUIC connection that carried no packet for this
	// long (default 30s).
	IdleTimeout *config.Duration `toml:"idle_timeout"`
	// EnableEarlyData accepts 0-RTT data on resumed connections (Envoy's
	// enable_early_data; default false). Requests received as early data
	// are served only for replay-safe methods (GET, HEAD, OPTIONS); others
	// get 425 Too Early (RFC 8470), Envoy's default early_data_policy.
	EnableEarlyData bool `toml:"enable_early_data"`
	// InitialStreamWindowSize is each request stream's initial receive
	// window, in bytes (default 256 KiB, as HTTP/2's).
	InitialStreamWindowSize int64 `toml:"initial_stream_window_size"`
	// MaxStreamWindowSize bounds the stream receive window that QUIC
	// auto-tuning grows to while the stream is read fast (default 16 MiB,
	// Envoy's QUIC stream window).
	MaxStreamWindowSize int64 `toml:"max_stream_window_size"`
	// InitialConnectionWindowSize is each connection's initial receive
	// window, in bytes (default 1 MiB, as HTTP/2's).
	InitialConnectionWindowSize int64 `toml:"initial_connection_window_size"`
	// MaxConnectionWindowSize bounds the auto-tuned connection receive
	// window (default 24 MiB, Envoy's QUIC connection window).
	MaxConnectionWindowSize int64 `toml:"max_connection_window_size"`
}

// Flow-control window bounds: a window below minQUICWindow stalls every
// upload on round trips; above maxQUICWindow one connection could make a
// worker hold more than that of unread request bytes.
const (
	minQUICWindow = 1 << 10
	maxQUICWindow = 1 << 30
)

func (o *HTTP3Options) withDefaults() {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 100
	}
	if o.IdleTimeout == nil {
		o.IdleTimeout = &config.Duration{Duration: 30 * time.Second}
	}
	if o.InitialStreamWindowSize == 0 {
		o.InitialStreamWindowSize = 256 << 10
	}
	if o.MaxStreamWindowSize == 0 {
		o.MaxStreamWindowSize = max(16<<20, o.InitialStreamWindowSize)
	}
	if o.InitialConnectionWindowSize == 0 {
		o.InitialConnectionWindowSize = 1 << 20
	}
	if o.MaxConnectionWindowSize == 0 {
		o.MaxConnectionWindowSize = max(24<<20, o.InitialConnectionWindowSize)
	}
}

func (o *HTTP3Options) validate() error {
	const p = "http3_protocol_options."
	window := func(key string, v int64) error {
		if v < minQUICWindow || v > maxQUICWindow {
			return registry.Errorf(p+key, "must be in %d..%d bytes, got %d", minQUICWindow, maxQUICWindow, v)
		}
		return nil
	}
	switch {
	case o.MaxConcurrentStreams < 1 || o.MaxConcurrentStreams > 1<<20:
		return registry.Errorf(p+"max_concurrent_streams", "must be in 1..1048576")
	case o.IdleTimeout.Duration <= 0:
		return registry.Errorf(p+"idle_timeout", "must be positive")
	}
	for _, w := range []struct {
		key string
		v   int64
	}{
		{"initial_stream_window_size", o.InitialStreamWindowSize},
		{"max_stream_window_size", o.MaxStreamWindowSize},
		{"initial_connection_window_size", o.InitialConnectionWindowSize},
		{"max_connection_window_size", o.MaxConnectionWindowSize},
	} {
		if err := window(w.key, w.v); err != nil {
			return err
		}
	}
	switch {
	case o.MaxStreamWindowSize < o.InitialStreamWindowSize:
		return registry.Errorf(p+"max_stream_window_size", "must be at least initial_stream_window_size (%d)", o.InitialStreamWindowSize)
	case o.MaxConnectionWindowSize < o.InitialConnectionWindowSize:
		return registry.Errorf(p+"max_connection_window_size", "must be at least initial_connection_window_size (%d)", o.InitialConnectionWindowSize)
	}
	return nil
}

// SetDefaultAltSvc sets the Alt-Svc value the manager advertises on HTTP/1
// and HTTP/2 responses when the config sets none (alt_svc). The server sets
// it before Build for a TCP listener that has a udp listener on its port.
func (c *Config) SetDefaultAltSvc(v string) {
	if c.AltSvc == "" {
		c.AltSvc = v
	}
}

// AltSvcFor returns the Alt-Svc value that advertises HTTP/3 on port.
func AltSvcFor(port int) string { return `h3=":` + strconv.Itoa(port) + `"` }

// addAltSvc adds the manager's Alt-Svc field to a response head of an
// HTTP/1 or HTTP/2 stream that has none.
func (s *stream) addAltSvc(h *httpfilter.ResponseHeaders) {
	v := s.conn.f.cfg.AltSvc
	if v == "" || (s.h2 != nil && s.h2.proto == protoHTTP3) || h.Has("alt-svc") {
		return
	}
	h.Add("alt-svc", v)
}

// HTTP3Server serves HTTP/3 on one UDP socket with a manager's filter
// chain. Serve runs on one goroutine; Shutdown and Close may be called from
// any goroutine, also before Serve.
type HTTP3Server struct {
	f        *Factory
	tr       *quic.Transport
	ln       http3.QUICListener
	handler  http.Handler
	base     netfilter.Info
	tlsConf  *tls.Config // the listener's, for the certificate served
	draining func() bool
	// earlyData: 0-RTT is on, so a request may arrive before the handshake
	// completes.
	earlyData bool
	// Listener, when set before Serve, counts the connections in the udp
	// listener's stats (listener.<address>.*) too, as a TCP listener's.
	Listener *stats.ListenerStats

	mu    sync.Mutex
	conns map[*quicConn]struct{} // connections being served
	// handshakes holds the connections quic-go admitted (Transport's
	// ConnContext) that Serve has not accepted yet: their handshake runs,
	// or they wait in the listener's queue.
	handshakes map[*handshake]struct{}
	stopped    bool           // Shutdown or Close began: admit no new connection
	settled    chan struct{}  // closed once stopped and no handshake is left
	lnClosed   bool           // the listener is closed: accept no more
	wg         sync.WaitGroup // one per connection being served
}

// handshake marks, in its context, a connection between its first packet
// and Serve's Accept.
type handshake struct{}

type handshakeKey struct{}

// errStopped refuses a connection that opens while the server stops (the
// client gets CONNECTION_REFUSED). While a worker drains, the packets of new
// connections go to its successor (gateway/quicroute), so this is for those
// that reach a worker shutting down for good.
var errStopped = errors.New("hcm: http3 server is stopping")

// CheckHTTP3 reports why the manager cannot serve a udp listener, or nil.
func (f *Factory) CheckHTTP3() error {
	if f.cfg.CodecType != "auto" {
		return registry.Errorf("codec_type", "a udp listener serves HTTP/3: codec_type must be auto, not %q", f.cfg.CodecType)
	}
	return nil
}

// NewHTTP3Server returns a server of HTTP/3 on pc with tlsConf (its ALPN is
// replaced by h3). base holds the facts every connection shares (listener
// and filter chain names, buffer limit); the server fills in addresses, SNI
// and TLS state per connection. draining reports whether the worker drains.
// The server owns pc.
func (f *Factory) NewHTTP3Server(pc net.PacketConn, tlsConf *tls.Config, base netfilter.Info, draining func() bool) (*HTTP3Server, error) {
	if err := f.CheckHTTP3(); err != nil {
		pc.Close()
		return nil, err
	}
	o := &f.cfg.HTTP3
	qc := &quic.Config{
		MaxIncomingStreams:             o.MaxConcurrentStreams,
		MaxIncomingUniStreams:          16,
		MaxIdleTimeout:                 o.IdleTimeout.Duration,
		InitialStreamReceiveWindow:     uint64(o.InitialStreamWindowSize),
		MaxStreamReceiveWindow:         uint64(o.MaxStreamWindowSize),
		InitialConnectionReceiveWindow: uint64(o.InitialConnectionWindowSize),
		MaxConnectionReceiveWindow:     uint64(o.MaxConnectionWindowSize),
		Allow0RTT:                      o.EnableEarlyData,
	}
	maxHeaderBytes := f.cfg.MaxRequestHeadersKB << 10
	conf := h3TLSConfig(tlsConf, maxHeaderBytes)
	tr := &quic.Transport{Conn: pc}
	if r, ok := pc.(interface {
		ConnectionIDGenerator() quic.ConnectionIDGenerator
	}); ok {
		// Connection ids name the worker that owns the connection, so that
		// packets reaching another worker find it (gateway/quicroute).
		tr.ConnectionIDGenerator = r.ConnectionIDGenerator()
	}
	var ln http3.QUICListener
	var err error
	if o.EnableEarlyData {
		// An early listener hands out connections before the handshake
		// completes, so that requests in 0-RTT data are served at once.
		ln, err = tr.ListenEarly(conf, qc)
	} else {
		ln, err = tr.Listen(conf, qc)
	}
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, fmt.Errorf("hcm: http3 listen: %w", err)
	}
	base.TLS, base.TransportProtocol = true, "tls"
	s := &HTTP3Server{f: f, tr: tr, ln: ln, base: base, tlsConf: tlsConf, draining: draining, earlyData: o.EnableEarlyData,
		conns: map[*quicConn]struct{}{}, handshakes: map[*handshake]struct{}{}, settled: make(chan struct{})}
	s.handler = http.HandlerFunc(s.serveHTTP)
	tr.ConnContext = s.admit
	return s, nil
}

// connServer returns the HTTP/3 server of the one connection q.
func (s *HTTP3Server) connServer(q *quicConn) *http3.Server {
	return &http3.Server{
		Handler:        s.handler,
		MaxHeaderBytes: s.f.cfg.MaxRequestHeadersKB << 10,
		IdleTimeout:    s.f.cfg.IdleTimeout.Duration,
		ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
			return s.connContext(ctx, q)
		},
	}
}

// h3TicketPrefix marks the extra data sluice adds to a session ticket of
// an HTTP/3 connection: the SETTINGS_MAX_FIELD_SECTION_SIZE it announced.
const h3TicketPrefix = "sluice h3 max_field_section_size="

// h3TLSConfig returns the TLS config of an HTTP/3 listener: tlsConf with
// ALPN h3, whose session tickets are sealed with tlsConf's keys at the time
// of use (the supervisor rotates them in tlsConf, not in a clone) and carry
// the field section size the server announced. A client sends 0-RTT
// requests under the SETTINGS it remembers, so a ticket from a server that
// allowed larger header blocks than this one does may not carry early
// data (RFC 9114 section 7.2.4.2).
func h3TLSConfig(tlsConf *tls.Config, maxHeaderBytes int) *tls.Config {
	conf := http3.ConfigureTLSConfig(tlsConf)
	extra := []byte(h3TicketPrefix + strconv.Itoa(maxHeaderBytes))
	conf.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, extra)
		return tlsConf.EncryptTicket(cs, ss)
	}
	conf.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := tlsConf.DecryptTicket(identity, cs)
		if err != nil || ss == nil || !ss.EarlyData {
			return ss, err
		}
		ss.EarlyData = false
		for _, e := range ss.Extra {
			if v, ok := bytes.CutPrefix(e, []byte(h3TicketPrefix)); ok {
				n, err := strconv.Atoi(string(v))
				ss.EarlyData = err == nil && n <= maxHeaderBytes
			}
		}
		return ss, nil
	}
	return conf
}

// Serve serves HTTP/3 until Shutdown or Close; it then returns nil.
func (s *HTTP3Server) Serve() error {
	for {
		qc, err := s.ln.Accept(context.Background())
		if err != nil {
			if s.isStopped() || errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("hcm: http3 accept: %w", err)
		}
		if h, ok := qc.Context().Value(handshakeKey{}).(*handshake); ok {
			s.settle(h)
		}
		q := &quicConn{qc: qc, draining: s.draining, serving: make(chan struct{})}
		q.srv = s.connServer(q)
		ok, stopping := s.add(q)
		if !ok {
			_ = qc.CloseWithError(h3NoError, "")
			continue
		}
		go s.serveConn(q)
		if stopping {
			// Its handshake began before the drain: it is served like the
			// connections open then, its streams so far handled and the
			// later ones refused for the client to retry elsewhere.
			q.goAway()
		}
	}
}

// admit is the Transport's ConnContext: it records a new connection's
// handshake, until Serve accepts the connection or it ends, and refuses new
// connections once the server stops.
func (s *HTTP3Server) admit(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errStopped
	}
	h := &handshake{}
	s.handshakes[h] = struct{}{}
	ctx = context.WithValue(ctx, handshakeKey{}, h)
	context.AfterFunc(ctx, func() { s.settle(h) }) // the handshake failed or the connection ended
	return ctx, nil
}

// settle forgets the handshake h; the last one of a stopped server closes
// settled.
func (s *HTTP3Server) settle(h *handshake) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.handshakes[h]; !ok {
		return
	}
	delete(s.handshakes, h)
	if s.stopped && len(s.handshakes) == 0 {
		close(s.settled)
	}
}

// h3NoError is H3_NO_ERROR, the code of a graceful close.
const h3NoError = quic.ApplicationErrorCode(http3.ErrCodeNoError)

// serveConn serves one QUIC connection until it closes.
func (s *HTTP3Server) serveConn(q *quicConn) {
	defer s.wg.Done()
	if d := s.f.cfg.MaxConnectionDuration.Duration; d > 0 {
		t := time.AfterFunc(d, func() {
			s.f.stats.DownstreamCxMaxDurationReached.Inc()
			q.goAway() // a no-op when a drain sent the GOAWAY already
		})
		defer t.Stop()
	}
	// It returns when the connection is closed (by the client, by an idle
	// timeout, or by goAway once its streams are done) and every stream's
	// handler has returned.
	_ = q.srv.ServeQUICConn(q.qc)
	_ = q.qc.CloseWithError(h3NoError, "")
	s.mu.Lock()
	delete(s.conns, q)
	s.mu.Unlock()
}

// add registers a connection to serve, unless the listener closed;
// stopping says that the server stops and the connection is to get a
// GOAWAY.
func (s *HTTP3Server) add(q *quicConn) (ok, stopping bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lnClosed {
		return false, false
	}
	s.conns[q] = struct{}{}
	s.wg.Add(1)
	return true, s.stopped
}

func (s *HTTP3Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// stop makes the server admit no new connection and returns those it
// serves. Connections whose handshake already began are still accepted
// (and get a GOAWAY) until closeListener.
func (s *HTTP3Server) stop() []*quicConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		if len(s.handshakes) == 0 {
			close(s.settled)
		}
	}
	conns := make([]*quicConn, 0, len(s.conns))
	for q := range s.conns {
		conns = append(conns, q)
	}
	return conns
}

// closeListener makes Serve accept no more connections and return; quic-go
// refuses the connections still in their handshake.
func (s *HTTP3Server) closeListener() {
	s.mu.Lock()
	s.lnClosed = true
	s.mu.Unlock()
	_ = s.ln.Close()
}

// Shutdown stops admitting connections, sends every connection an HTTP/3
// GOAWAY, lets the connections whose handshake had begun complete it and
// get their GOAWAY (a client that sent a request right after its handshake
// is not refused), and waits until their streams finish or ctx ends (then
// it closes them). The socket is closed on return.
func (s *HTTP3Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, q := range conns {
		q.goAway()
	}
	select {
	case <-s.settled:
	case <-ctx.Done():
	}
	s.closeListener()
	s.mu.Lock()
	conns = conns[:0]
	for q := range s.conns {
		conns = append(conns, q)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, q := range conns {
			_ = q.qc.CloseWithError(h3NoError, "")
		}
		<-done
	}
	s.closeTransport()
	return err
}

// Close closes every connection and the socket at once; it returns when
// the streams' handlers have returned.
func (s *HTTP3Server) Close() error {
	s.stop()
	s.closeListener()
	// Again: Serve may have accepted a connection before the listener closed.
	for _, q := range s.stop() {
		_ = q.qc.CloseWithError(h3NoError, "")
	}
	s.wg.Wait()
	s.closeTransport()
	return nil
}

func (s *HTTP3Server) closeTransport() {
	s.ln.Close()
	s.tr.Close()
	s.tr.Conn.Close()
}

type connKey struct{}

// connContext makes the connection value of the QUIC connection of q,
// which its streams share, and counts the connection in the manager's stats.
func (s *HTTP3Server) connContext(ctx context.Context, q *quicConn) context.Context {
	close(q.serving)
	qc := q.qc
	info := s.base
	info.ID = h3ConnIDs.Add(1)
	info.RemoteAddr = addrPort(qc.RemoteAddr())
	info.LocalAddr = addrPort(qc.LocalAddr())
	cs := qc.ConnectionState().TLS
	info.ServerName = cs.ServerName
	info.NegotiatedALPN = cs.NegotiatedProtocol
	info.TLSState = &cs
	info.LocalCert = tlsconn.ServedLeaf(s.tlsConf, cs.ServerName)
	c := &connection{f: s.f, info: &info}
	q.info = &info
	c.c = q
	c.remoteIP = info.RemoteAddr.Addr().AppendTo(nil)
	c.internal = s.f.isInternal(info.RemoteAddr.Addr())
	c.initXFCC()
	st, ls, start := s.f.stats, s.Listener, time.Now()
	st.DownstreamCxTotal.Inc()
	st.DownstreamCxActive.Inc()
	if ls != nil {
		ls.DownstreamCxTotal.Inc()
		ls.DownstreamCxActive.Inc()
	}
	context.AfterFunc(qc.Context(), func() {
		st.DownstreamCxActive.Dec()
		st.DownstreamCxDestroy.Inc()
		if ls != nil {
			ls.DownstreamCxActive.Dec()
			ls.DownstreamCxDestroy.Inc()
			ls.DownstreamCxLengthMs.Record(time.Since(start))
		}
	})
	return context.WithValue(ctx, connKey{}, c)
}

// h3ConnIDs numbers QUIC connections; the top bit keeps them apart from the
// listener's TCP connection ids.
var h3ConnIDs = func() *atomic.Uint64 {
	var c atomic.Uint64
	c.Store(1 << 63)
	return &c
}()

// serveHTTP runs one HTTP/3 request stream through the filter chain.
func (s *HTTP3Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(*connection)
	if c == nil {
		http.Error(w, "no connection", http.StatusInternalServerError)
		return
	}
	q := c.c.(*quicConn)
	q.streams.Add(1)
	if c.lastRequest() {
		q.goAway() // max_requests_per_connection
	}
	abort := serveStreamEarly(c, w, r, protoHTTP3, s.earlyData && !replaySafe(r.Method) && inEarlyData(q.qc))
	q.streamDone()
	if abort {
		// Reset the stream: the response could not be completed.
		panic(http.ErrAbortHandler)
	}
}

// replaySafe reports whether a request with method may be served from
// 0-RTT data, which an attacker can replay: GET, HEAD and OPTIONS, the safe
// methods of RFC 9110 section 9.2.1 without TRACE (it echoes the request).
func replaySafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// inEarlyData reports whether a request on qc arrives as early data: the
// connection accepted 0-RTT and its handshake is not complete. Once the
// client's Finished arrived the request cannot be a replay (a replayed
// handshake never completes), so it is served.
func inEarlyData(qc *quic.Conn) bool {
	select {
	case <-qc.HandshakeComplete():
		return false
	default:
		return qc.ConnectionState().Used0RTT
	}
}

// addrPort converts a UDP address to a netip.AddrPort (IPv4 unmapped).
func addrPort(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// quicConn is the netfilter.Conn of a QUIC connection, as the streams of
// its HTTP/3 connection see it: no byte stream, no parking, no handoff.
// Its methods may be called from any stream's goroutine. It also holds the
// connection's own HTTP/3 server and its graceful close.
type quicConn struct {
	qc       *quic.Conn
	info     *netfilter.Info
	draining func() bool
	srv      *http3.Server // serves this connection only
	serving  chan struct{} // closed once srv serves the connection
	streams  atomic.Int64  // request streams whose handler runs
	// closeIdle, set by goAway, ends the server's Shutdown wait: the
	// server then closes the connection with H3_NO_ERROR.
	closeIdle atomic.Pointer[context.CancelFunc]
}

// h3GoawayGrace is how long a connection in GOAWAY with no stream running
// stays open before it closes: a stream quic-go accepted before the GOAWAY
// whose HEADERS frame has not arrived yet has no handler yet, and gets that
// long for it to arrive.
const h3GoawayGrace = time.Second

// goAway sends the connection an HTTP/3 GOAWAY naming the next stream id
// after the last one accepted: accepted streams finish, later ones are
// rejected with H3_REQUEST_REJECTED (a client retries them on a new
// connection), and the connection closes once no stream runs (clients close
// it themselves by then; the server does after h3GoawayGrace). It reports
// whether this call started the GOAWAY.
func (q *quicConn) goAway() bool {
	ctx, cancel := context.WithCancel(context.Background())
	if !q.closeIdle.CompareAndSwap(nil, &cancel) {
		cancel()
		return false
	}
	// Shutdown sends the GOAWAY; once ctx ends it closes the connection.
	// Before srv serves the connection it would make ServeQUICConn refuse
	// it (closing it with its streams unanswered): wait for that.
	go func() {
		select {
		case <-q.serving:
		case <-q.qc.Context().Done():
			return
		}
		_ = q.srv.Shutdown(ctx)
	}()
	q.closeIfIdle()
	return true
}

// streamDone ends a stream's handler; the last one closes a connection in
// GOAWAY.
func (q *quicConn) streamDone() {
	if q.streams.Add(-1) == 0 && q.closeIdle.Load() != nil {
		q.closeIfIdle()
	}
}

// closeIfIdle closes a connection in GOAWAY if it still runs no stream
// after h3GoawayGrace.
func (q *quicConn) closeIfIdle() {
	if q.streams.Load() != 0 {
		return
	}
	time.AfterFunc(h3GoawayGrace, func() {
		if q.streams.Load() == 0 {
			(*q.closeIdle.Load())()
		}
	})
}

var _ netfilter.Conn = (*quicConn)(nil)

var errNoByteStream = errors.New("hcm: a QUIC connection has no byte stream")

func (q *quicConn) Read([]byte) (int, error)         { return 0, errNoByteStream }
func (q *quicConn) Write([]byte) (int, error)        { return 0, errNoByteStream }
func (q *quicConn) Info() *netfilter.Info            { return q.info }
func (q *quicConn) Close() error                     { return q.qc.CloseWithError(0, "") }
func (q *quicConn) CloseWrite() error                { return nil }
func (q *quicConn) SetReadDeadline(time.Time) error  { return nil }
func (q *quicConn) SetWriteDeadline(time.Time) error { return nil }
func (q *quicConn) SetIdle(bool)                     {}
func (q *quicConn) Draining() bool                   { return q.draining() }
func (q *quicConn) DrainClose() bool                 { return false } // the server's GOAWAY ends it
func (q *quicConn) CanHandoff() bool                 { return false }
func (q *quicConn) Park()                            {}
func (q *quicConn) Handoff(readAhead []byte) bool    { return false }
