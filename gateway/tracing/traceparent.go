package tracing

// W3C trace context (https://www.w3.org/TR/trace-context/): the traceparent
// field, "00-<trace-id>-<parent-id>-<flags>" in lowercase hex.

// TraceID is a 16-byte trace id; SpanID an 8-byte span id.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

// SpanContext is what a traceparent field carries.
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	Sampled bool
}

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

// ParseTraceparent parses a traceparent field value. It accepts version 00
// exactly, and a later version whose first 55 bytes have version 00's shape
// (followed by '-' if longer), as the specification asks; it rejects
// uppercase hex, version ff and all-zero ids.
func ParseTraceparent(b []byte) (SpanContext, bool) {
	var sc SpanContext
	if len(b) < traceparentLen || b[2] != '-' || b[35] != '-' || b[52] != '-' {
		return sc, false
	}
	ver, ok := hexByte(b[0], b[1])
	if !ok || ver == 0xff || (ver == 0 && len(b) != traceparentLen) || (len(b) > traceparentLen && b[traceparentLen] != '-') {
		return sc, false
	}
	if !decodeHex(sc.TraceID[:], b[3:35]) || !decodeHex(sc.SpanID[:], b[36:52]) {
		return sc, false
	}
	flags, ok := hexByte(b[53], b[54])
	if !ok || sc.TraceID == (TraceID{}) || sc.SpanID == (SpanID{}) {
		return sc, false
	}
	sc.Sampled = flags&1 != 0
	return sc, true
}

// AppendTraceparent appends the version 00 traceparent of sc to dst.
func AppendTraceparent(dst []byte, sc SpanContext) []byte {
	dst = append(dst, '0', '0', '-')
	dst = appendHex(dst, sc.TraceID[:])
	dst = append(dst, '-')
	dst = appendHex(dst, sc.SpanID[:])
	if sc.Sampled {
		return append(dst, '-', '0', '1')
	}
	return append(dst, '-', '0', '0')
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, b []byte) []byte {
	for _, x := range b {
		dst = append(dst, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return dst
}

// unhex is the value of a lowercase hex digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

func hexByte(hi, lo byte) (byte, bool) {
	h, l := unhex(hi), unhex(lo)
	if h < 0 || l < 0 {
		return 0, false
	}
	return byte(h<<4 | l), true
}

// decodeHex decodes len(dst)*2 lowercase hex digits from src.
func decodeHex(dst, src []byte) bool {
	for i := range dst {
		v, ok := hexByte(src[2*i], src[2*i+1])
		if !ok {
			return false
		}
		dst[i] = v
	}
	return true
}
