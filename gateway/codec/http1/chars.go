package http1

import "bytes"

// Character classes of RFC 9110 §5.6.2 (tchar), §5.5 (field-vchar), and RFC
// 3986 (URI characters), as lookup tables.
var (
	tokenTable  [256]bool // tchar
	valueTable  [256]bool // HTAB, SP, VCHAR, obs-text
	targetTable [256]bool // request-target bytes
	hostTable   [256]bool // reg-name bytes: unreserved, pct-encoded, sub-delims
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		tokenTable[c] = alnum || isAnyOf(b, "!#$%&'*+-.^_`|~")
		valueTable[c] = b == '\t' || b >= 0x20 && b != 0x7f
		// Visible ASCII except '#': a fragment never appears in a
		// request-target. Delimiters RFC 3986 excludes but clients send
		// unencoded in the wild ("{}|\^`<>) are tolerated.
		targetTable[c] = b > 0x20 && b < 0x7f && b != '#'
		hostTable[c] = alnum || isAnyOf(b, "-._~%!$&'()*+,;=")
	}
}

func isAnyOf(b byte, set string) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == b {
			return true
		}
	}
	return false
}

// text is the type of the checks shared by this codec's parser, which
// holds its head as bytes, and the exported checks (target.go), which other
// codecs call with strings: one implementation serves both without a copy.
type text interface{ ~string | ~[]byte }

// validToken reports whether b is a non-empty token.
func validToken[T text](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !tokenTable[b[i]] {
			return false
		}
	}
	return true
}

// validTargetBytes reports whether every byte of b may appear in a
// request-target.
func validTargetBytes[T text](b T) bool {
	for i := 0; i < len(b); i++ {
		if !targetTable[b[i]] {
			return false
		}
	}
	return true
}

// validValue reports whether every byte of b may appear in a field value.
// It checks eight bytes at a time for a control byte (below 0x20, which
// includes HTAB) or DEL, and looks closer only at words that have one.
func validValue[T text](b T) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for len(b) >= 8 {
		x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		ctl := (x - 0x20*ones) &^ x & highs // some byte < 0x20
		y := x ^ 0x7f*ones
		del := (y - ones) &^ y & highs // some byte == 0x7f
		if ctl|del != 0 {
			break
		}
		b = b[8:]
	}
	for i := 0; i < len(b); i++ {
		if !valueTable[b[i]] {
			return false
		}
	}
	return true
}

// equalFold reports whether b equals the lowercase ASCII string s, ignoring
// ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether b equals the lowercase ASCII lower,
// ignoring the case of b.
func equalFoldBytes(b, lower []byte) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// trimOWS removes leading and trailing SP and HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// TrimOWS removes leading and trailing optional whitespace (SP and HTAB,
// RFC 9110 §5.6.3) from b.
func TrimOWS(b []byte) []byte { return trimOWS(b) }

// NextElem splits the first element off a comma-separated list (RFC 9110
// §5.6.1), trimming optional whitespace; empty elements come back empty.
// Filters that read list-valued fields (Accept-Encoding, Cache-Control,
// Vary) walk them with it.
func NextElem(list []byte) (elem, rest []byte) { return nextElem(list) }

// HasToken reports whether the comma-separated list holds token, compared
// case-insensitively, with an element's parameters (after '=' or ';')
// ignored: "no-transform" in a Cache-Control value, "*" in a Vary.
func HasToken(list []byte, token string) bool {
	for rest := list; len(rest) > 0; {
		var e []byte
		e, rest = nextElem(rest)
		if i := bytes.IndexAny(e, "=;"); i >= 0 {
			e = trimOWS(e[:i])
		}
		if len(e) == len(token) && bytes.EqualFold(e, []byte(token)) {
			return true
		}
	}
	return false
}

// ParseUint parses a decimal number of at most 19 digits, without sign or
// spaces (a header value the codecs already trimmed): the numbers of
// Envoy's x-envoy-* request headers.
func ParseUint(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// nextElem splits the first element off a comma-separated list (RFC 9110
// §5.6.1), trimming optional whitespace. Empty elements come back empty.
func nextElem(list []byte) (elem, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}

// validHost reports whether b is uri-host [ ":" port ] (RFC 3986), with a
// non-empty host. requirePort demands a non-empty port, as authority-form
// does.
func validHost[T text](b T, requirePort bool) bool {
	if len(b) == 0 {
		return false
	}
	i := 0
	if b[0] == '[' {
		i = 1
		for i < len(b) && b[i] != ']' {
			c := b[i]
			if !(hostTable[c] || c == ':') {
				return false
			}
			i++
		}
		if i == len(b) || i == 1 {
			return false
		}
		i++ // ']'
	} else {
		for i < len(b) && b[i] != ':' {
			if !hostTable[b[i]] {
				return false
			}
			if b[i] == '%' {
				// pct-encoded = "%" HEXDIG HEXDIG
				if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
					return false
				}
				i += 2
			}
			i++
		}
		if i == 0 {
			return false
		}
	}
	if i == len(b) {
		return !requirePort
	}
	if b[i] != ':' {
		return false
	}
	port := b[i+1:]
	if requirePort && len(port) == 0 {
		return false
	}
	for j := 0; j < len(port); j++ {
		if !isDigit(port[j]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	_, ok := hexVal(c)
	return ok
}

// parseContentLength parses a Content-Length value: 1*DIGIT within int64.
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
