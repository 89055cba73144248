package netfilter

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/netip"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
)

// Status tells the filter manager whether to pass the event to the next
// filter.
type Status uint8

const (
	// Continue passes the event to the next filter.
	Continue Status = iota
	// StopIteration parks the chain at this filter. The filter must later
	// call Callbacks.ContinueReading, or close the connection; a timeout
	// guards every stop so that no connection hangs.
	StopIteration
)

func (s Status) String() string {
	switch s {
	case Continue:
		return "Continue"
	case StopIteration:
		return "StopIteration"
	}
	return "Status(?)"
}

// Event is a connection event delivered to every network filter.
type Event uint8

const (
	// RemoteClose: the peer closed the connection.
	RemoteClose Event = iota + 1
	// LocalClose: sluice closed the connection.
	LocalClose
)

// Info is what is known about a downstream connection once its filter chain
// is chosen. It is immutable after the listener filters ran.
type Info struct {
	ID         uint64
	RemoteAddr netip.AddrPort // after PROXY protocol, if any
	LocalAddr  netip.AddrPort // after original_dst / PROXY protocol
	// LocalAddrRestored is set by a listener filter that replaced
	// LocalAddr with a destination other than the socket's own (Envoy's
	// localAddressRestored): the connection's original destination.
	LocalAddrRestored bool
	// DirectRemoteAddr is the socket's peer when a listener filter (the
	// PROXY protocol) replaced RemoteAddr with the client it announced,
	// else the zero AddrPort: see DirectRemote.
	DirectRemoteAddr netip.AddrPort
	// HeaderConsumed is set when a listener filter consumed bytes at the
	// start of the stream (a PROXY protocol header, and the addresses it
	// carried): running the listener filters again on the rest of the
	// stream could not restore what they learnt, so the connection is
	// never handed to another generation, which would.
	HeaderConsumed    bool
	ServerName        string               // SNI
	ALPN              []string             // offered by the client
	TransportProtocol string               // "raw_buffer" or "tls"
	TLS               bool                 // the chain terminates TLS
	NegotiatedALPN    string               // after the TLS handshake
	TLSState          *tls.ConnectionState // nil without TLS
	// LocalCert is the certificate sluice presented in the TLS handshake
	// (tlsconn.ServedLeaf), nil without TLS.
	LocalCert *x509.Certificate
	Listener  string // listener name
	// Socket is the listener whose socket accepted the connection: the
	// one a hot-restart handoff names. It differs from Listener after a
	// use_original_dst hand-over.
	Socket      string
	FilterChain string // filter chain name
	BufferLimit int    // per_connection_buffer_limit_bytes
	// Adopted is set for a connection handed over by the previous
	// generation (a reload's or an upgrade's handoff): it was accepted,
	// and counted in downstream_cx_total, there.
	Adopted bool
}

// OriginalDst returns the connection's original destination: LocalAddr
// when a listener filter restored it, else the zero AddrPort. original_dst
// clusters forward there.
func (i *Info) OriginalDst() netip.AddrPort {
	if !i.LocalAddrRestored {
		return netip.AddrPort{}
	}
	return i.LocalAddr
}

// DirectRemote returns the connection's physical peer, before the PROXY
// protocol (Envoy's direct remote address): DirectRemoteAddr when set,
// else RemoteAddr.
func (i *Info) DirectRemote() netip.AddrPort {
	if i.DirectRemoteAddr.IsValid() {
		return i.DirectRemoteAddr
	}
	return i.RemoteAddr
}

// Conn is a downstream connection as network filters see it. Read and Write
// pass through the read and write filters. Methods other than Close and
// SetDeadline must be called on the connection's goroutine, with one
// exception: a terminal filter that copies both directions at once
// (tcp_proxy) may call Write and CloseWrite from one other goroutine while
// the connection's goroutine reads; write filters then run on that
// goroutine, concurrently with the read filters.
type Conn interface {
	io.ReadWriter
	// Info returns the connection's facts; the pointer is valid for the life
	// of the connection and must not be modified.
	Info() *Info
	// Close closes the connection. It may be called from any goroutine.
	Close() error
	// CloseWrite half-closes the connection (TCP FIN) when it can.
	CloseWrite() error
	// SetReadDeadline and SetWriteDeadline are net.Conn's.
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// SetIdle tells the connection whether its terminal filter waits for the
	// next request with nothing buffered. When the worker drains, it wakes
	// an idle connection's blocked read with a past deadline, so the filter
	// sees a timeout and, finding Draining true, ends the connection.
	SetIdle(idle bool)
	// Draining reports whether the worker is draining: finish what is in
	// flight, then end the connection (or hand it off).
	Draining() bool
	// DrainClose reports whether the drain wants the connection closed
	// after its current response (for a connection that cannot be handed
	// off): always with the immediate strategy, with a probability growing
	// over the drain with the gradual one; false when not draining.
	DrainClose() bool
	// CanHandoff reports whether Handoff can move this connection to the
	// next generation (a raw TCP connection in a worker that has one).
	CanHandoff() bool
	// Park releases the connection's goroutine while it is idle: the
	// terminal filter, with nothing buffered and no request in progress,
	// calls Park and returns from Serve. The connection then holds no
	// goroutine of its own until its socket is readable, its read deadline
	// passes, or a drain wakes it; then Serve is called again, on a new
	// goroutine, to carry on. It keeps the memory of an idle keep-alive
	// connection to its socket and a few small structs.
	Park()
	// Handoff passes the connection's socket, with readAhead (bytes read
	// but not consumed), to the next generation, which serves it as if just
	// accepted. It reports whether it did; then the caller must stop using
	// the connection and return from Serve. Only a terminal filter between
	// requests may call it.
	Handoff(readAhead []byte) bool
}

// WriteOnReader is implemented by a Conn that can do a write and the read
// of its answer as one step (a plain TCP connection without network
// filters): WriteOnRead makes the next Read write b first and wait for the
// peer without a read that would find nothing. It reports false, taking
// nothing, when it cannot (CanWriteOnRead false); the caller then writes b
// itself. b must stay unchanged until that Read, which returns the write's
// error if it fails, or FlushWrite. Any other use of the connection (Write,
// CloseWrite, Handoff) writes b first.
type WriteOnReader interface {
	CanWriteOnRead() bool
	WriteOnRead(b []byte) bool
	// FlushWrite writes what WriteOnRead took if no Read did.
	FlushWrite() error
}

// PeerCloseWatcher is implemented by a Conn that can notice, without a
// read, that the peer closed or reset it while the terminal filter waits
// on something else (an HTTP/1.1 request at its upstream), as nginx's
// check for a broken connection does.
//
// WatchPeerClose starts a watch and returns its token: if the peer is
// found gone while the watch lasts, *abort runs once, on another
// goroutine. Connections are looked at about once a second, each from the
// second look at one watch on, so a watch shorter than a second costs no
// look. UnwatchPeerClose ends the watch and reports whether it fired (then
// *abort has run or is about to). PeerCloseFired reports whether the watch
// with token fired; it may be called until the next watch starts. All
// three are called by the connection's goroutine; *abort must stay valid
// and unchanged while the watch lasts (the upstream connection's Abort).
type PeerCloseWatcher interface {
	WatchPeerClose(abort *func()) (token uint64)
	UnwatchPeerClose(token uint64) (fired bool)
	PeerCloseFired(token uint64) bool
}

// Callbacks is what the manager gives each network filter.
type Callbacks interface {
	// Conn returns the connection.
	Conn() Conn
	// ContinueReading resumes a chain parked at the calling filter. It may
	// be called from any goroutine.
	ContinueReading()
}

// Filter is one network filter instance: it implements ReadFilter,
// WriteFilter or Terminal (and possibly more than one), and always OnEvent.
type Filter interface {
	// OnEvent reports a connection event.
	OnEvent(ev Event)
}

// ReadFilter sees the bytes read from downstream, in config order.
type ReadFilter interface {
	Filter
	// OnNewConnection is called once, before any data.
	OnNewConnection() Status
	// OnData is called with bytes read; the filter may modify b. b belongs to
	// the manager and must not be retained after the call.
	OnData(b *buffer.Buffer, endStream bool) Status
}

// WriteFilter sees the bytes written downstream, in reverse config order.
type WriteFilter interface {
	Filter
	// OnWrite is called with bytes about to be written; b as for OnData.
	OnWrite(b *buffer.Buffer, endStream bool) Status
}

// Terminal is the last network filter: it serves the connection's byte
// stream on the connection's goroutine and returns when it is done with it.
// The manager closes the connection after Serve returns.
type Terminal interface {
	Filter
	Serve(c Conn)
}

// Factory builds a connection's instance of one network filter. It is built
// once per config generation, immutable and safe for concurrent use.
// NewFilter must be cheap and must not block.
type Factory interface {
	NewFilter(cb Callbacks) Filter
}

// ListenerFilter runs on an accepted connection before a filter chain is
// chosen.
type ListenerFilter interface {
	// OnAccept inspects the connection. It may block on cb.Peek; the
	// listener's listener_filters_timeout bounds the whole chain.
	OnAccept(cb ListenerCallbacks) Status
}

// AdoptFilter is implemented by listener filters that must look at a
// connection handed over by the previous generation (Info.Adopted)
// differently from a new one. A moved connection is a plaintext HTTP/1
// keep-alive connection between two requests, which began without a PROXY
// header and whose first bytes the previous generation read: a filter that
// inspects a connection's first bytes would wait for the client's next
// request (and close the connection at listener_filters_timeout while the
// client idles) or misread it. OnAdopt replaces OnAccept for such a
// connection and must not wait for bytes: cb.Peek(0) returns those read
// ahead, if any, at once. Filters without it run OnAccept.
type AdoptFilter interface {
	OnAdopt(cb ListenerCallbacks) Status
}

// ListenerCallbacks is what the listener gives a listener filter.
type ListenerCallbacks interface {
	// Peek returns at least n bytes from the start of the stream without
	// consuming them (fewer only with an error: io.EOF or a timeout).
	Peek(n int) ([]byte, error)
	// Consume discards n peeked bytes (e.g. a PROXY protocol header).
	Consume(n int)
	// Info is the connection's record, which the filter may update.
	Info() *Info
}

// ListenerFilterFactory builds a connection's instance of a listener filter.
type ListenerFilterFactory interface {
	NewFilter() ListenerFilter
}
