package http1

import (
	"strconv"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// AppendRequestHead appends an HTTP/1.1 request head to dst and returns the
// extended slice:
//
//	METHOD SP path SP HTTP/1.1 CRLF
//	host: authority CRLF                          (empty without an Authority)
//	fields CRLF...
//	content-length: N | transfer-encoding: chunked (from f and contentLength)
//	connection: close                             (when !keepAlive)
//	CRLF
//
// A nil or empty Path is written as the authority for CONNECT and as "/"
// otherwise. A request without an Authority (HTTP/1.0 without Host, HTTP/2
// or HTTP/3 without :authority) still gets a host field, empty: an HTTP/1.1
// request must carry one (RFC 9112 §3.2), and servers answer 400 to one
// without. With NoBody framing a non-negative contentLength is still
// written. Fields named host, content-length or transfer-encoding are
// skipped (the head carries them from its arguments), and so is any field
// whose name is not a token or whose value holds a CR, LF or other control
// character, so a filter cannot split the message. Method, Path and
// Authority are written as they are: the parser guarantees them for parsed
// heads, and whoever rewrites them must keep them valid. It does not
// allocate beyond growing dst.
func AppendRequestHead(dst []byte, h *httpfilter.RequestHeaders, f Framing, contentLength int64, keepAlive bool) []byte {
	dst = append(dst, h.Method...)
	dst = append(dst, ' ')
	switch {
	case len(h.Path) > 0:
		dst = append(dst, h.Path...)
	case string(h.Method) == "CONNECT":
		dst = append(dst, h.Authority...)
	default:
		dst = append(dst, '/')
	}
	dst = append(dst, " HTTP/1.1\r\n"...)
	dst = append(dst, "host: "...)
	dst = append(dst, h.Authority...)
	dst = append(dst, "\r\n"...)
	dst = appendFields(dst, &h.Headers)
	dst = appendFraming(dst, f, contentLength)
	if !keepAlive {
		dst = append(dst, "connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendResponseHead appends an HTTP/1.1 response head to dst, for a client
// that spoke HTTP major.minor, and returns the extended slice: the status
// line with the standard reason phrase (empty for unknown codes), the
// fields, the framing field from f and contentLength (as for
// AppendRequestHead: NoBody with a non-negative contentLength, as for HEAD
// and 304, still writes content-length), then "connection: close" when
// !keepAlive, or "connection: keep-alive" when keepAlive and the client
// spoke HTTP/1.0. The caller must not use Chunked framing towards an
// HTTP/1.0 client. Fields are filtered as in AppendRequestHead.
func AppendResponseHead(dst []byte, major, minor int, h *httpfilter.ResponseHeaders, f Framing, contentLength int64, keepAlive bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	status := h.Status
	if status < 100 || status > 999 {
		status = 500
	}
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, StatusText(status)...)
	dst = append(dst, "\r\n"...)
	dst = appendFields(dst, &h.Headers)
	dst = appendFraming(dst, f, contentLength)
	switch {
	case !keepAlive:
		dst = append(dst, "connection: close\r\n"...)
	case major == 1 && minor == 0:
		dst = append(dst, "connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendChunk appends data as one chunk (hex size CRLF data CRLF). Empty data
// appends nothing: a zero-size chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(len(data)), 16)
	dst = append(dst, "\r\n"...)
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendLastChunk appends the last chunk, the trailer fields (trailers may be
// nil) and the final CRLF. Trailer fields are filtered as head fields are.
func AppendLastChunk(dst []byte, trailers *httpfilter.Headers) []byte {
	dst = append(dst, "0\r\n"...)
	if trailers != nil {
		dst = appendFields(dst, trailers)
	}
	return append(dst, "\r\n"...)
}

func appendFraming(dst []byte, f Framing, contentLength int64) []byte {
	switch {
	case f == Chunked:
		dst = append(dst, "transfer-encoding: chunked\r\n"...)
	case f == ContentLength, f == NoBody && contentLength >= 0:
		if contentLength < 0 {
			contentLength = 0
		}
		dst = append(dst, "content-length: "...)
		dst = strconv.AppendInt(dst, contentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

func appendFields(dst []byte, h *httpfilter.Headers) []byte {
	for i := range h.Fields {
		fl := &h.Fields[i]
		switch string(fl.Name) {
		case "host", "content-length", "transfer-encoding":
			continue
		}
		if !validToken(fl.Name) || !validValue(fl.Value) {
			continue
		}
		dst = append(dst, fl.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, fl.Value...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}
