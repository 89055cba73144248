package hcm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Downstream HTTP/3.
//
// A udp listener's filter chain is one HTTP connection manager with TLS. The
// worker runs a quic.Transport on its UDP socket and quic-go's http3 server
// on it; each request stream runs on its own goroutine through the same
// stream code as an HTTP/2 stream (h2stream.go): the filter chain and the
// router see a request like any other, with StreamInfo.Protocol "HTTP/3".
// 0-RTT is off. A drain sends GOAWAY and lets in-flight streams finish.

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
}

func (o *HTTP3Options) withDefaults() {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 100
	}
	if o.IdleTimeout == nil {
		o.IdleTimeout = &config.Duration{Duration: 30 * time.Second}
	}
}

func (o *HTTP3Options) validate() error {
	switch {
	case o.MaxConcurrentStreams < 1 || o.MaxConcurrentStreams > 1<<20:
		return registry.Errorf("http3_protocol_options.max_concurrent_streams", "must be in 1..1048576")
	case o.IdleTimeout.Duration <= 0:
		return registry.Errorf("http3_protocol_options.idle_timeout", "must be positive")
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
	ln       *quic.Listener
	srv      *http3.Server
	base     netfilter.Info
	draining func() bool
}

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
		MaxIncomingStreams:    o.MaxConcurrentStreams,
		MaxIncomingUniStreams: 16,
		MaxIdleTimeout:        o.IdleTimeout.Duration,
		Allow0RTT:             false,
	}
	tr := &quic.Transport{Conn: pc}
	if r, ok := pc.(interface {
		ConnectionIDGenerator() quic.ConnectionIDGenerator
	}); ok {
		// Connection ids name the worker that owns the connection, so that
		// packets reaching another worker find it (gateway/quicroute).
		tr.ConnectionIDGenerator = r.ConnectionIDGenerator()
	}
	ln, err := tr.Listen(http3.ConfigureTLSConfig(tlsConf), qc)
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, fmt.Errorf("hcm: http3 listen: %w", err)
	}
	base.TLS, base.TransportProtocol = true, "tls"
	s := &HTTP3Server{f: f, tr: tr, ln: ln, base: base, draining: draining}
	s.srv = &http3.Server{
		Handler:        http.HandlerFunc(s.serveHTTP),
		MaxHeaderBytes: f.cfg.MaxRequestHeadersKB << 10,
		IdleTimeout:    f.cfg.IdleTimeout.Duration,
		ConnContext:    s.connContext,
	}
	return s, nil
}

// Serve serves HTTP/3 until Shutdown or Close; it then returns nil.
func (s *HTTP3Server) Serve() error {
	err := s.srv.ServeListener(s.ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, sends every connection an HTTP/3
// GOAWAY and waits until their streams finish or ctx ends (then it closes
// them). The socket is closed on return.
func (s *HTTP3Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.closeTransport()
	return err
}

// Close closes every connection and the socket at once.
func (s *HTTP3Server) Close() error {
	err := s.srv.Close()
	s.closeTransport()
	return err
}

func (s *HTTP3Server) closeTransport() {
	s.ln.Close()
	s.tr.Close()
	s.tr.Conn.Close()
}

type connKey struct{}

// connContext makes the connection value of a QUIC connection, which its
// streams share, and counts the connection in the manager's stats.
func (s *HTTP3Server) connContext(ctx context.Context, qc *quic.Conn) context.Context {
	info := s.base
	info.ID = h3ConnIDs.Add(1)
	info.RemoteAddr = addrPort(qc.RemoteAddr())
	info.LocalAddr = addrPort(qc.LocalAddr())
	cs := qc.ConnectionState().TLS
	info.ServerName = cs.ServerName
	info.NegotiatedALPN = cs.NegotiatedProtocol
	info.TLSState = &cs
	c := &connection{f: s.f, info: &info}
	c.c = &quicConn{qc: qc, info: &info, draining: s.draining}
	c.remoteIP = info.RemoteAddr.Addr().AppendTo(nil)
	st := s.f.stats
	st.DownstreamCxTotal.Inc()
	st.DownstreamCxActive.Inc()
	context.AfterFunc(qc.Context(), func() {
		st.DownstreamCxActive.Dec()
		st.DownstreamCxDestroy.Inc()
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
	if serveStream(c, w, r, protoHTTP3) {
		// Reset the stream: the response could not be completed.
		panic(http.ErrAbortHandler)
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
// Its methods may be called from any stream's goroutine.
type quicConn struct {
	qc       *quic.Conn
	info     *netfilter.Info
	draining func() bool
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
