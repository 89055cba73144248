// Package httpfilter holds the contracts of HTTP filters: the interfaces a
// filter implements, the callbacks the HTTP connection manager gives it, the
// status values that tell the manager what to do next, and the value types
// they exchange (headers, local replies, stream info). It holds no
// implementation.
//
// # Flow
//
// The HTTP connection manager (package hcm) turns each request a codec
// decodes, whatever the protocol, into a stream. It selects the route before
// the chain runs (see DecoderCallbacks.Route), then walks the decoder filters
// in config order: DecodeHeaders, DecodeData for each body chunk,
// DecodeTrailers. The last decoder filter is terminal (the router): it sends
// the request upstream and starts the response by calling
// DecoderCallbacks.EncodeHeaders. The manager then walks the encoder filters
// in reverse config order and hands the result to the codec.
//
// The manager iterates; filters never call the next filter. A filter that
// returns a Stop status parks iteration at itself and must later call
// ContinueDecoding (or ContinueEncoding), or end the stream with a local
// reply.
//
// # Concurrency
//
// All filter methods of one stream are called one at a time: never
// concurrently. They are normally called on the connection's goroutine; a
// manager may call the encoder path from another goroutine, after a
// happens-before edge with every earlier call. A filter that does work on its
// own goroutine must not touch the stream from it except through
// DecoderCallbacks.Post.
//
// # Implementations
//
//	interface          implemented by
//	Factory            every registered HTTP filter (gateway/filters/http/...)
//	DecoderFilter      router (terminal), ext_authz, ...
//	EncoderFilter      filters that rewrite responses
//	DecoderCallbacks   hcm's stream
package httpfilter
