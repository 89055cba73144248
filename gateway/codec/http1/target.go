package http1

import "net"

// Checks of the request line's parts and of fields for other codecs: an
// HTTP/2 request carries its request line as pseudo-fields (:method, :path,
// :authority), which HPACK only checks as field values, and the router
// writes them into an HTTP/1.1 request line upstream. They apply the rules
// this codec applies to its own request line and fields.

// ValidMethod reports whether m is a method: a non-empty token (RFC 9110
// §9.1).
func ValidMethod(m string) bool { return validToken(m) }

// ValidFieldName reports whether n is a field name: a non-empty token
// (RFC 9110 §5.1), as this codec's parser requires.
func ValidFieldName(n string) bool { return validToken(n) }

// ValidFieldValue reports whether every byte of v may appear in a field
// value (RFC 9110 §5.5: no control byte but HTAB, no DEL), as this
// codec's parser requires.
func ValidFieldValue(v string) bool { return validValue(v) }

// ValidPath reports whether p is an origin-form request-target ("/" and
// request-target bytes: visible ASCII but '#') or the asterisk form "*".
func ValidPath(p string) bool {
	if p == "*" {
		return true
	}
	return len(p) > 0 && p[0] == '/' && validTargetBytes(p)
}

// ValidAuthority reports whether a is uri-host [ ":" port ] with a
// non-empty host (RFC 3986) and no userinfo; requirePort demands a port,
// as a CONNECT target does.
func ValidAuthority(a string, requirePort bool) bool { return validHost(a, requirePort) }

// AuthorityHost is the host of an authority (a Host header or
// :authority), without its port or an IPv6 literal's brackets.
func AuthorityHost(a []byte) string {
	s := string(a)
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}
