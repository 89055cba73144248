// Package http1 is sluice's HTTP/1.1 codec (RFC 9112, with the semantics of
// RFC 9110). The HTTP connection manager uses it downstream to read requests
// and write responses; the router uses it upstream to write requests and
// read responses.
//
// # What it parses
//
// A Reader buffers a connection and parses request heads (ReadRequest) and
// response heads (ReadResponse) into the protocol-independent
// httpfilter.RequestHeaders and httpfilter.ResponseHeaders: field names are
// lowercased; the request line and Host become Method, Path and Authority;
// Headers.Fields keeps end-to-end fields only. Connection and every field it
// names, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE (unless
// exactly "trailers"), Host and Expect: 100-continue are removed after what
// they mean is recorded in Request or Response (Framing, ContentLength,
// KeepAlive, Upgrade, ExpectContinue). Content-Length is end-to-end and stays
// in Fields once validated (but for a 1xx or 204 response, or a 2xx answer
// to CONNECT, which may not carry one: there it is dropped); the serializers
// ignore it there and write the framing from their arguments. Body reads the body
// that follows, decoding the chunked coding and its trailers. The Append
// functions serialize heads and chunks into caller-owned slices.
//
// # Strictness
//
// Where the RFCs let a recipient either reject or repair a message, the
// codec rejects it with an *Error carrying the status sluice answers with:
// bare LF or bare CR, obs-fold, whitespace before a colon, invalid field
// names or values, more than one leading empty line, a missing, repeated or
// invalid Host, Content-Length repeated (even with equal values) or not a
// plain decimal, Content-Length together with Transfer-Encoding,
// Transfer-Encoding that is not exactly a final chunked (501 for unknown
// codings) or on HTTP/1.0, request targets in a form the method does not
// allow, versions other than HTTP/1.0 and HTTP/1.1 (505 when well-formed),
// a request line over Limits.MaxLineBytes (414), a head over
// Limits.MaxHeaderBytes or with more than Limits.MaxHeaders fields (431).
// Chunk-size lines must be plain hex with extensions and no whitespace.
// Responses follow the same rules, and every invalid response is a 502.
// Nothing in this package panics on any input.
//
// # Ownership of slices
//
// Parsing does not copy: the pseudo-fields, field names and values, and
// trailers alias the Reader's buffer (names are lowercased in place). They
// stay valid until the next ReadRequest or ReadResponse call (or Reset,
// Preload, Release); reading the body never overwrites the head. A caller
// that keeps a value longer must copy it. The Reader, its Body and the
// Request or Response values are used by one goroutine at a time.
//
// # Allocation
//
// Parsing a head allocates nothing once the Fields slice of the reused
// Request or Response has grown to its working size, and Reader buffers come
// from a sync.Pool. Errors are shared values: compare them with errors.As.
package http1
