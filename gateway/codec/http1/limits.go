package http1

// Default limits, used for zero Limits fields.
const (
	// DefaultMaxHeaderBytes bounds a whole head, start line included, as
	// Envoy's max_request_headers_kb default does.
	DefaultMaxHeaderBytes = 60 << 10
	// DefaultMaxHeaders bounds the number of field lines in a head or a
	// trailer section.
	DefaultMaxHeaders = 100
	// DefaultMaxLineBytes bounds the request line or status line, and a
	// chunk-size line.
	DefaultMaxLineBytes = 16 << 10
)

// Limits bound what a peer may send. Zero fields take the defaults; a nil
// *Limits means all defaults. A Limits value is read-only while in use and may
// be shared by any number of Readers.
type Limits struct {
	// MaxHeaderBytes bounds the whole head including the start line and the
	// final empty line (431 when exceeded). Default 60 KiB.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of field lines (431). Default 100.
	MaxHeaders int
	// MaxLineBytes bounds the request line or status line, without its CRLF
	// (414 for requests). Default 16 KiB.
	MaxLineBytes int
}

// limits is Limits with the defaults applied.
type limits struct {
	headerBytes int
	headers     int
	lineBytes   int
}

func (l *Limits) resolve() limits {
	out := limits{DefaultMaxHeaderBytes, DefaultMaxHeaders, DefaultMaxLineBytes}
	if l == nil {
		return out
	}
	if l.MaxHeaderBytes > 0 {
		out.headerBytes = l.MaxHeaderBytes
	}
	if l.MaxHeaders > 0 {
		out.headers = l.MaxHeaders
	}
	if l.MaxLineBytes > 0 {
		out.lineBytes = l.MaxLineBytes
	}
	return out
}
