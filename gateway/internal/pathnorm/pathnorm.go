// Package pathnorm normalizes the path of a request the way Envoy's HTTP
// connection manager does with normalize_path, merge_slashes and
// path_with_escaped_slashes_action (envoy:source/common/http/path_utility.cc,
// which canonicalizes with Chromium's URL path rules), so that every
// component that matches on the path (route selection, RBAC, ext_authz, the
// access log) and the upstream see one representation of it.
//
// A path that needs no change (no '%', no '\', no "." or ".." segment, no
// "//", no byte that must be escaped) is recognized in one pass over it,
// without allocating, and returned as it is.
package pathnorm

import (
	"bytes"
	"fmt"
)

// EscapedSlashesAction is what happens to a path with an escaped slash
// ("%2F") or backslash ("%5C"), in either case of the hex digits (Envoy's
// path_with_escaped_slashes_action).
type EscapedSlashesAction uint8

const (
	// KeepUnchanged forwards the escapes as they are (Envoy's default).
	KeepUnchanged EscapedSlashesAction = iota
	// RejectRequest answers 400.
	RejectRequest
	// UnescapeAndRedirect unescapes them and redirects (307) the client to
	// the resulting path.
	UnescapeAndRedirect
	// UnescapeAndForward unescapes them and carries on with the request.
	UnescapeAndForward
)

var actionNames = [...]string{"KEEP_UNCHANGED", "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"}

// String returns the action's configuration name, e.g. "KEEP_UNCHANGED".
func (a EscapedSlashesAction) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("EscapedSlashesAction(%d)", a)
}

// ParseAction parses an action's configuration name. Envoy's
// IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED.
func ParseAction(s string) (EscapedSlashesAction, error) {
	if s == "IMPLEMENTATION_SPECIFIC_DEFAULT" {
		return KeepUnchanged, nil
	}
	for i, n := range actionNames {
		if s == n {
			return EscapedSlashesAction(i), nil
		}
	}
	return 0, fmt.Errorf("pathnorm: unknown path_with_escaped_slashes_action %q (want KEEP_UNCHANGED, REJECT_REQUEST, UNESCAPE_AND_REDIRECT or UNESCAPE_AND_FORWARD)", s)
}

// Options say which normalizations apply. The zero value changes nothing.
type Options struct {
	// Normalize is RFC 3986 normalization with Chromium's (and Envoy's)
	// rules: percent-encoded unreserved characters are decoded ("%61" →
	// "a"), bytes a path may not hold are percent-encoded, '\' becomes
	// '/', and "." and ".." segments (also with ";parameters") are removed,
	// ".." stopping at the root. A fragment ('#'), an escaped or raw NUL
	// and a malformed escape ('%' not followed by two hex digits) are
	// rejected.
	Normalize bool
	// MergeSlashes turns each run of '/' into one, after Normalize.
	MergeSlashes bool
	// EscapedSlashes is applied first: see EscapedSlashesAction.
	EscapedSlashes EscapedSlashesAction
}

// Enabled reports whether the options may change a path.
func (o *Options) Enabled() bool {
	return o.Normalize || o.MergeSlashes || o.EscapedSlashes != KeepUnchanged
}

// Outcome is what Apply did with a path.
type Outcome uint8

const (
	// Unchanged: the path is forwarded as it came.
	Unchanged Outcome = iota
	// Changed: the returned path replaces the request's.
	Changed
	// Redirect: the client is to be redirected to the returned path
	// (UnescapeAndRedirect found an escaped slash).
	Redirect
	// Reject: the request is answered 400.
	Reject
)

var outcomeNames = [...]string{"Unchanged", "Changed", "Redirect", "Reject"}

// String returns the outcome's name.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", o)
}

// Byte classes. A byte of the path that is plain is copied as it is and
// needs no look by the fast scan.
const (
	plain    = 1 << iota // no work on its own
	unres                // RFC 3986 unreserved: a %-escape of it is decoded
	escape               // must be percent-encoded in a normalized path
	invalid              // rejected (NUL)
	hexDigit             // 0-9 A-F a-f
)

var class [256]uint8

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b == 0:
			class[c] = invalid
		case b < 0x20 || b >= 0x7f:
			class[c] = escape
		case b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			b == '-' || b == '.' || b == '_' || b == '~':
			class[c] = plain | unres
		}
		if b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' {
			class[c] |= hexDigit
		}
	}
	// Chromium's path table: these are escaped; the other printable
	// ASCII bytes pass ('%', '/', '\', '?' and '#' are handled apart).
	for _, b := range []byte(" \"<>^`{|}") {
		class[b] = escape
	}
	for _, b := range []byte("!$&'()*+,;=:@[]") {
		class[b] = plain
	}
}

// Apply applies o to path, the request's :path (origin-form: the path
// and an optional query, which is left as it is). It returns the path to
// use and what was done: for Unchanged the returned slice is path itself;
// for Changed and Redirect it is written into (*scratch)[:0]. When Apply
// had to rewrite the path to know (a '%', '\', dot segment, …), *scratch
// is left holding the storage it wrote into, grown as needed, whatever the
// outcome: a path whose escapes all stay ("/caf%C3%A9") is Unchanged but
// was copied on the way. A caller that keeps *scratch thus allocates only
// for its longest path, not per request. scratch may be nil (then each
// rewrite allocates). A path that does not start with '/' (asterisk-form,
// CONNECT's authority-form) is left alone. For Reject the returned slice is
// nil.
func (o *Options) Apply(scratch *[]byte, path []byte) ([]byte, Outcome) {
	if len(path) == 0 || path[0] != '/' || !o.Enabled() || !o.needsWork(path) {
		return path, Unchanged
	}
	var dst []byte
	if scratch != nil {
		dst = (*scratch)[:0]
	}
	out, oc, buf := o.slow(dst, path)
	if scratch != nil && cap(buf) > cap(*scratch) {
		*scratch = buf[:0]
	}
	return out, oc
}

// needsWork is the fast scan: it reports whether some option may change
// path, looking at each byte once.
func (o *Options) needsWork(p []byte) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if class[c]&plain != 0 {
			continue
		}
		switch c {
		case '?':
			return o.Normalize && bytes.IndexByte(p[i+1:], '#') >= 0
		case '/':
			if i+1 < len(p) {
				switch p[i+1] {
				case '/':
					if o.MergeSlashes {
						return true
					}
				case '.':
					if o.Normalize && dotSegment(p[i+1:]) {
						return true
					}
				}
			}
		case '%':
			if o.Normalize {
				return true
			}
			if o.EscapedSlashes != KeepUnchanged && i+2 < len(p) && isSlashEscape(p[i+1], p[i+2]) {
				return true
			}
		default: // '\', '#', NUL, a byte to escape
			if o.Normalize {
				return true
			}
		}
	}
	return false
}

// dotSegment reports whether the segment at the start of p (up to '/', '?'
// or the end) is "." or "..", possibly followed by ";parameters".
func dotSegment(p []byte) bool {
	n := 0
	for n < len(p) && n < 2 && p[n] == '.' {
		n++
	}
	return n > 0 && (n == len(p) || p[n] == '/' || p[n] == '?' || p[n] == ';')
}

// isSlashEscape reports whether %hi lo escapes '/' or '\'.
func isSlashEscape(hi, lo byte) bool {
	return (hi == '2' && (lo == 'f' || lo == 'F')) || (hi == '5' && (lo == 'c' || lo == 'C'))
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

const upperHex = "0123456789ABCDEF"

// slow normalizes path into out (empty, with capacity to reuse). Besides
// the path and outcome it returns the storage it wrote into (nil when it
// wrote nothing), for the caller to keep.
func (o *Options) slow(out, path []byte) (_ []byte, _ Outcome, buf []byte) {
	p, query := path, []byte(nil)
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		p, query = path[:q], path[q:]
	}
	if o.Normalize && bytes.IndexByte(query, '#') >= 0 {
		return nil, Reject, nil // a fragment is never sent (RFC 9110 §7.1), Envoy rejects it
	}
	unescapeSlashes := o.EscapedSlashes != KeepUnchanged
	foundSlash := false
	// Pass 1: escapes and single bytes.
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 < len(p) && class[p[i+1]]&hexDigit != 0 && class[p[i+2]]&hexDigit != 0 {
				hi, lo := p[i+1], p[i+2]
				v := unhex(hi)<<4 | unhex(lo)
				switch {
				case unescapeSlashes && isSlashEscape(hi, lo):
					foundSlash = true
					if v == '\\' && o.Normalize {
						v = '/'
					}
					out = append(out, v)
				case !o.Normalize:
					out = append(out, c, hi, lo)
				case v == 0:
					return nil, Reject, out
				case class[v]&unres != 0:
					out = append(out, v)
				default:
					// kept escaped, hex digits in their case (a
					// server may be sensitive to it)
					out = append(out, c, hi, lo)
				}
				i += 2
				continue
			}
			if o.Normalize {
				return nil, Reject, out // malformed escape
			}
			out = append(out, c)
			continue
		}
		if !o.Normalize {
			out = append(out, c)
			continue
		}
		switch cl := class[c]; {
		case cl&plain != 0 || c == '/':
			out = append(out, c)
		case c == '\\':
			out = append(out, '/')
		case cl&escape != 0:
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
		default: // NUL, '#'
			return nil, Reject, out
		}
	}
	if foundSlash && o.EscapedSlashes == RejectRequest {
		return nil, Reject, out
	}
	if o.Normalize {
		out = removeDotSegments(out)
	}
	if o.MergeSlashes {
		out = mergeSlashes(out)
	}
	out = append(out, query...)
	outcome := Changed
	if foundSlash && o.EscapedSlashes == UnescapeAndRedirect {
		outcome = Redirect
	}
	if outcome == Changed && bytes.Equal(out, path) {
		return path, Unchanged, out
	}
	return out, outcome, out
}

// removeDotSegments removes "." and ".." segments (RFC 3986 §5.2.4, with
// Chromium's handling: a ".." at the root stays at the root, a trailing dot
// segment leaves a trailing slash, ";parameters" after the dots are
// dropped with them) from p, which starts with '/', in place.
func removeDotSegments(p []byte) []byte {
	w := 1 // p[:w] is the output; it ends with '/' when a segment starts
	for i := 1; i <= len(p); {
		j := bytes.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p)
		} else {
			j += i
		}
		seg := p[i:j]
		if k := bytes.IndexByte(seg, ';'); k >= 0 && dotSegment(seg) {
			seg = seg[:k]
		}
		switch string(seg) {
		case ".":
		case "..":
			if w > 1 {
				k := bytes.LastIndexByte(p[:w-1], '/')
				w = k + 1
			}
		default:
			w += copy(p[w:], seg)
			if j < len(p) {
				p[w] = '/'
				w++
			}
		}
		i = j + 1
	}
	return p[:w]
}

// mergeSlashes turns each run of '/' in p into one, in place.
func mergeSlashes(p []byte) []byte {
	w := 0
	var prev byte
	for _, c := range p {
		if c == '/' && prev == '/' {
			continue
		}
		prev = c
		p[w] = c
		w++
	}
	return p[:w]
}
