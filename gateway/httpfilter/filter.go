package httpfilter

import (
	"io"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
)

// HeadersStatus tells the manager what to do after a filter handled headers.
type HeadersStatus uint8

const (
	// HeadersContinue passes the headers to the next filter.
	HeadersContinue HeadersStatus = iota
	// HeadersStopIteration parks the chain at this filter. Body data that
	// arrives meanwhile is still passed to this filter's data method. The
	// filter must later call ContinueDecoding/ContinueEncoding or send a
	// local reply.
	HeadersStopIteration
	// HeadersStopAllAndBuffer parks the chain and makes the manager buffer
	// body data (up to the connection's buffer limit) until the filter
	// continues. Past the limit the manager answers 413 for requests and 500
	// for responses.
	HeadersStopAllAndBuffer
)

var headersStatusNames = [...]string{"Continue", "StopIteration", "StopAllAndBuffer"}

func (s HeadersStatus) String() string {
	if int(s) < len(headersStatusNames) {
		return headersStatusNames[s]
	}
	return "HeadersStatus(?)"
}

// DataStatus tells the manager what to do after a filter handled body data.
type DataStatus uint8

const (
	// DataContinue passes the data to the next filter.
	DataContinue DataStatus = iota
	// DataStopAndBuffer keeps the data in the manager's buffer; it is passed
	// on, together with later data, when the filter continues.
	DataStopAndBuffer
	// DataStopNoBuffer drops the chunk from iteration: the filter took what
	// it needed (or moved it elsewhere).
	DataStopNoBuffer
)

var dataStatusNames = [...]string{"Continue", "StopAndBuffer", "StopNoBuffer"}

func (s DataStatus) String() string {
	if int(s) < len(dataStatusNames) {
		return dataStatusNames[s]
	}
	return "DataStatus(?)"
}

// TrailersStatus tells the manager what to do after a filter handled trailers.
type TrailersStatus uint8

const (
	// TrailersContinue passes the trailers to the next filter.
	TrailersContinue TrailersStatus = iota
	// TrailersStopIteration parks the chain until the filter continues.
	TrailersStopIteration
)

// DecoderFilter handles the request half of a stream. Methods are called on
// the stream's goroutine, one at a time. Arguments are owned by the stream:
// headers live until the stream ends; a *buffer.Buffer is valid only during
// the call.
type DecoderFilter interface {
	// DecodeHeaders is called once with the request head. endStream is true
	// when the request has no body.
	DecodeHeaders(h *RequestHeaders, endStream bool) HeadersStatus
	// DecodeData is called for each body chunk; endStream marks the last.
	DecodeData(b *buffer.Buffer, endStream bool) DataStatus
	// DecodeTrailers is called once if the request ends with trailers.
	DecodeTrailers(t *Headers) TrailersStatus
	// OnDestroy is called once when the stream ends, however it ends. The
	// filter must release what it holds and not call its callbacks again.
	OnDestroy()
}

// EncoderFilter handles the response half of a stream, with the same
// threading and ownership rules as DecoderFilter. Encoder filters run in
// reverse config order.
type EncoderFilter interface {
	// EncodeHeaders is called once with the final (non-1xx) response head.
	EncodeHeaders(h *ResponseHeaders, endStream bool) HeadersStatus
	// EncodeData is called for each body chunk; endStream marks the last.
	EncodeData(b *buffer.Buffer, endStream bool) DataStatus
	// EncodeTrailers is called once if the response ends with trailers.
	EncodeTrailers(t *Headers) TrailersStatus
}

// BodyEnder is implemented by encoder filters that hold response body bytes
// back between EncodeData calls (a compressor). Before a response's
// trailers run through the encoder filters, the manager calls EndBody,
// which appends the held bytes to b; they go on through the filters after
// it as the body's last data. Called on the stream's goroutine.
type BodyEnder interface {
	EndBody(b *buffer.Buffer)
}

// BodyPacer is implemented by encoder filters that limit the bandwidth of
// a response's body (the fault filter's response_rate_limit). After the
// encoder filters have handled body data, and before the manager writes
// it downstream, it asks each BodyPacer of the stream how many of the n
// bytes left may go now: Pace waits as long as the limit requires (it
// may block the encoding goroutine, as a slow client's socket does) and
// returns how many, at most n (less than 1 counts as 1). The manager
// writes and flushes that many and asks again for the rest, so the
// upstream is read no faster than the limit lets the body out. A pacer
// that does not limit the stream returns n at once. Called on the
// goroutine that encodes the response.
type BodyPacer interface {
	Pace(n int) int
}

// BodyGiver is implemented by encoder filters that can give a response
// head that arrives as the whole response (endStream true) a body of their
// own: the cache filter, answering an upstream 304 to its own conditional
// request with the body it stored. Right after such a filter's
// EncodeHeaders with endStream true, the manager calls GiveBody; a
// non-empty result makes the head go on through the encoder filters after
// it with endStream false, and the bytes follow through them as the
// response's only data, ending it (the manager passes them on as a copy,
// so the giver may keep sharing them). Called on the stream's goroutine.
type BodyGiver interface {
	GiveBody() []byte
}

// TrailersToBody is implemented by encoder filters that carry a response's
// trailers in its body (grpc_web: a trailers frame). When a response ends
// with trailers, the manager calls EncodeTrailersToBody on such a filter in
// place of EncodeTrailers: the filter appends to b the body bytes that stand
// for the trailers and removes from t the fields it took. The bytes go on
// through the encoder filters after it as body data (after any BodyEnder's
// held bytes). A response whose trailers end up empty ends with its body,
// with no trailers section. Called on the stream's goroutine.
type TrailersToBody interface {
	EncodeTrailersToBody(t *Headers, b *buffer.Buffer)
}

// Factory builds a stream's instance of one HTTP filter. A Factory is built
// once per config generation from the filter's config, is immutable and safe
// for concurrent use. NewFilter must be cheap and must not block; the value
// it returns implements DecoderFilter, EncoderFilter, or both.
type Factory interface {
	NewFilter(cb DecoderCallbacks) any
}

// ChainAware is implemented by Factories that need to know the other filters
// of their chain, such as compressors that choose among themselves which one
// compresses a response. After the HTTP connection manager has built every
// HTTP filter Factory of a chain, and before any stream uses the chain, it
// calls ChainBuilt on each Factory that implements ChainAware, in chain
// order, with the chain's Factories in config order (the receiver among
// them). The calls are made once per built chain, on the building
// goroutine, one at a time; a Factory may record what it needs from chain
// (it may keep the slice, which is never modified, but must not modify it)
// and is immutable afterwards. A non-nil error fails the build; a
// *registry.FieldError's key is relative to the filter's own config table.
// Chains without a ChainAware Factory pay nothing per stream.
type ChainAware interface {
	ChainBuilt(chain []Factory) error
}

// FactoryFunc adapts a function to Factory.
type FactoryFunc func(cb DecoderCallbacks) any

// NewFilter calls f.
func (f FactoryFunc) NewFilter(cb DecoderCallbacks) any { return f(cb) }

// DecoderCallbacks is what the manager gives each filter of a stream. Its
// methods must be called on the stream's goroutine (from inside a filter
// method, or from a function passed to Post), never concurrently.
type DecoderCallbacks interface {
	// StreamID identifies the stream in logs; ConnectionID its connection.
	StreamID() uint64
	ConnectionID() uint64
	// Info is the stream's record for stats and the access log.
	Info() *StreamInfo
	// Route returns the route chosen for the request head, or nil when no
	// route matched. It is chosen once and cached.
	Route() Route
	// ClearRouteCache makes the next Route call match again, after a filter
	// changed what routing depends on.
	ClearRouteCache()
	// ContinueDecoding resumes a chain parked at the calling filter.
	ContinueDecoding()
	// SendLocalReply ends the stream with a locally generated response,
	// which runs through the encoder filters. Any headers already sent
	// downstream make the manager reset the stream instead, and so does a
	// call made while the stream's local reply is passing the encoder
	// filters (an encoder filter rejecting the reply's own body).
	SendLocalReply(r LocalReply)
	// EncodeHeaders, EncodeData and EncodeTrailers start and continue the
	// response; they are for the terminal filter (the router). Each returns
	// an error when the downstream is gone: the caller must stop and return.
	EncodeHeaders(h *ResponseHeaders, endStream bool) error
	EncodeData(b *buffer.Buffer, endStream bool) error
	EncodeTrailers(t *Headers) error
	// Encode1xxHeaders forwards an informational response (e.g. 103).
	Encode1xxHeaders(h *ResponseHeaders) error
	// Post runs fn on the stream's goroutine, serialised with filter
	// methods. It is the only method safe to call from other goroutines.
	Post(fn func())
}

// LocalReply is a response a filter generates instead of the upstream's.
type LocalReply struct {
	Status  int
	Body    string
	Headers []Field // extra response headers
	// Flags are the response flags it sets (e.g. NR, UH); Details is the
	// %RESPONSE_CODE_DETAILS% value (e.g. "route_not_found").
	Flags   ResponseFlags
	Details string
}

// Route is the route chosen for a stream. Terminal filters type-assert it to
// their own concrete type; other filters use these methods.
type Route interface {
	// Name is the route's configured name ("" if unnamed).
	Name() string
	// FilterDisabled reports whether the route disables the named filter.
	FilterDisabled(filterName string) bool
	// PerFilterConfig returns the most specific per-filter config of the
	// named filter (typed_per_filter_config: the route's, else its virtual
	// host's, else its route table's), as the filter's
	// registry.PerRouteConfig built it (merged with the less specific ones
	// when it is a registry.PerRouteMerger), or nil when none of them has
	// one.
	// The value is shared by every stream of the generation and must not
	// be modified. It is resolved when the route table is built: the call
	// does not allocate, and on a route without any per-filter config it
	// is a length check.
	PerFilterConfig(filterName string) any
}

// RouteTable selects a route for a request head. It is immutable and safe for
// concurrent use.
type RouteTable interface {
	Match(h *RequestHeaders) Route
}

// StreamIdler is implemented by the DecoderCallbacks of the HTTP connection
// manager's streams. The terminal filter (the router) type-asserts its
// callbacks to it to bound its waits on the upstream by the manager's
// stream_idle_timeout: when no byte moves for that long it ends the stream
// with SendLocalReply (status 408, FlagStreamIdleTimeout, details
// "stream_idle_timeout"), which resets a stream whose response started.
type StreamIdler interface {
	// StreamIdleTimeout is the manager's stream_idle_timeout; zero when
	// disabled.
	StreamIdleTimeout() time.Duration
}

// BufferLimiter is implemented by the DecoderCallbacks of the HTTP
// connection manager's streams. A filter that holds a whole request body
// (sluice.filters.http.buffer) type-asserts its callbacks to it to set how
// many body bytes the manager may hold for the stream before it answers
// 413, instead of the connection's per_connection_buffer_limit_bytes, as
// Envoy's setDecoderBufferLimit does. Call it on the stream's goroutine.
type BufferLimiter interface {
	SetDecoderBufferLimit(n int)
}

// StreamResetter is implemented by the DecoderCallbacks of the HTTP
// connection manager's streams. A filter that holds a request (a fault
// filter's delay) and learns that the client went away (an HTTP/1.1 peer
// close, an HTTP/2 or HTTP/3 stream reset) ends the stream with
// ResetStream: no response is sent, the HTTP/1.1 connection closes and an
// HTTP/2 or HTTP/3 stream is reset; the access log records the stream with
// the flags the filter set. Call it on the stream's goroutine.
type StreamResetter interface {
	ResetStream()
}

// Tunneler is implemented by the DecoderCallbacks of a stream whose
// downstream connection can become a raw byte tunnel: HTTP/1.1 streams of
// the HTTP connection manager. The terminal filter (the router) type-asserts
// its callbacks to it. Like DecoderCallbacks, its methods must be called on
// the stream's goroutine.
type Tunneler interface {
	// UpgradeRequested returns what the request asks to switch to: the
	// Upgrade field value of an HTTP/1.1 request whose Connection field has
	// the "upgrade" option (e.g. "websocket"), "CONNECT" for a CONNECT
	// request, or "" for neither. On HTTP/2 and HTTP/3 streams, an
	// extended CONNECT (RFC 8441, RFC 9220) answers its :protocol (the
	// request headers then read as the equivalent HTTP/1.1 upgrade: method
	// GET) and a plain CONNECT "CONNECT".
	UpgradeRequested() string
	// Tunnel sends the response head h downstream (through the encoder
	// filters, with no framing fields: a 101, or a 2xx for CONNECT), then
	// copies bytes both ways between the downstream connection and
	// upstream until both directions have ended, passing a half-close
	// (EOF) on with CloseWrite; an error in either direction aborts both
	// (upstream.Close). It blocks until the tunnel is over; the stream is
	// then complete and an HTTP/1.1 downstream connection closes. On an
	// HTTP/2 or HTTP/3 stream the head goes out as a 200 (a 101 included)
	// and the stream's DATA is the tunnel. The manager's
	// stream_idle_timeout closes a tunnel on which no byte moved. The
	// caller keeps ownership of upstream and releases it after Tunnel
	// returns. It returns an error when the stream cannot tunnel (a
	// response already started) or the head could not be written.
	Tunnel(h *ResponseHeaders, upstream TunnelConn) error
}

// TunnelConn is the upstream side of a tunnel. Read returns the upstream's
// bytes (including any read ahead while parsing the response head) and
// io.EOF on its half-close. During Tunnel, Read is called on one goroutine
// while Write and CloseWrite are called on another.
type TunnelConn interface {
	io.ReadWriter
	// CloseWrite half-closes the upstream connection (TCP FIN).
	CloseWrite() error
	// Close aborts the connection, waking a blocked Read or Write. It may
	// be called from any goroutine, more than once.
	Close() error
}
