// Package grpcwire holds the little of the gRPC wire protocol
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) the
// gateway needs without speaking gRPC itself: recognising a gRPC request by
// its content-type, mapping an HTTP status to a gRPC status code, and
// encoding a grpc-message value. The HTTP connection manager uses it to turn
// local replies to gRPC requests into gRPC trailers-only responses, the
// grpc_web filter to translate between gRPC-Web and gRPC.
package grpcwire

// ContentType is the content-type of a gRPC message stream.
const ContentType = "application/grpc"

// Header names and value, as byte slices for httpfilter.Headers. Read
// only.
var (
	StatusHeader     = []byte("grpc-status")
	MessageHeader    = []byte("grpc-message")
	ContentTypeValue = []byte(ContentType)
)

// Status codes (google.golang.org/grpc/codes numbering) the gateway sends.
const (
	OK               = 0
	Unknown          = 2
	PermissionDenied = 7
	Unimplemented    = 12
	Internal         = 13
	Unavailable      = 14
	Unauthenticated  = 16
)

// IsGRPC reports whether a content-type value names a gRPC message stream:
// exactly "application/grpc", or "application/grpc+" followed by a message
// format ("application/grpc+proto"). As in Envoy's
// Grpc::Common::hasGrpcContentType, the comparison is case-sensitive and
// "application/grpc-web" is not gRPC.
func IsGRPC(contentType []byte) bool {
	n := len(ContentType)
	return len(contentType) >= n && string(contentType[:n]) == ContentType &&
		(len(contentType) == n || contentType[n] == '+')
}

// FromHTTP maps an HTTP status to the gRPC status a client should see, as
// Envoy's Grpc::Utility::httpToGrpcStatus does (after
// https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
func FromHTTP(status int) int {
	switch status {
	case 400:
		return Internal
	case 401:
		return Unauthenticated
	case 403:
		return PermissionDenied
	case 404:
		return Unimplemented
	case 429, 502, 503, 504:
		return Unavailable
	}
	return Unknown
}

// ParseStatus parses a grpc-status value: its code, or -1 when it is not a
// decimal number below 100.
func ParseStatus(v []byte) int {
	if len(v) == 0 || len(v) > 2 {
		return -1
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// AppendMessage appends msg percent-encoded as a grpc-message value: bytes
// outside the printable ASCII range 0x20–0x7E, and '%', become %XX.
func AppendMessage(dst []byte, msg string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
