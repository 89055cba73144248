package httpinspector

import "bytes"

// h2Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// Application protocol names, as ALPN spells them.
var (
	alpnHTTP11 = []string{"http/1.1"}
	alpnHTTP10 = []string{"http/1.0"}
	alpnH2C    = []string{"h2c"}
)

// detect classifies the first bytes of a connection. It returns the
// protocols and done=true once it knows (nil protocols: not HTTP), or
// done=false when b is a valid start that needs more bytes. It decides as
// soon as a byte rules HTTP out, so a non-HTTP client is not kept waiting.
func detect(b []byte) (protos []string, done bool) {
	if n := min(len(b), len(h2Preface)); bytes.Equal(b[:n], h2Preface[:n]) {
		if len(b) >= len(h2Preface) {
			return alpnH2C, true
		}
		// "PRI * HTTP/2.0" is also a syntactically valid request line
		// start; wait for the whole preface
		return nil, false
	}
	// request-line = method SP request-target SP HTTP-version CRLF
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	switch {
	case i == len(b):
		return nil, false
	case i == 0 || b[i] != ' ':
		return nil, true
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] != 0x7f {
		i++
	}
	switch {
	case i == len(b):
		return nil, false
	case i == start || b[i] != ' ':
		return nil, true
	}
	i++
	version := b[i:]
	const v11, v10 = "HTTP/1.1\r\n", "HTTP/1.0\r\n"
	if len(version) < len(v11) {
		if bytes.HasPrefix([]byte(v11), version) || bytes.HasPrefix([]byte(v10), version) {
			return nil, false
		}
		return nil, true
	}
	switch string(version[:len(v11)]) {
	case v11:
		return alpnHTTP11, true
	case v10:
		return alpnHTTP10, true
	}
	return nil, true
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}
