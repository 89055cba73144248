package http1

// Framing says how a message body is delimited (RFC 9112 §6.3).
type Framing uint8

const (
	// NoBody means the message has no body: a request without Content-Length
	// or Transfer-Encoding, or a response to HEAD, a 1xx, 204 or 304 response,
	// or a 2xx response to CONNECT.
	NoBody Framing = iota
	// ContentLength means the body is exactly ContentLength bytes (possibly 0).
	ContentLength
	// Chunked means the body uses the chunked transfer coding.
	Chunked
	// UntilClose means the body runs until the peer closes the connection
	// (responses only).
	UntilClose
)

var framingNames = [...]string{"no-body", "content-length", "chunked", "until-close"}

// String returns a lowercase name of the framing.
func (f Framing) String() string {
	if int(f) < len(framingNames) {
		return framingNames[f]
	}
	return "unknown"
}
