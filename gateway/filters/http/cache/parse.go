package cache

import (
	"net/http"
	"time"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
)

// directives are the Cache-Control directives (RFC 9111 §5.2) the cache
// acts on. A delta-seconds value of -1 means the directive is absent.
type directives struct {
	noStore, noCache, private, public bool
	mustRevalidate, proxyRevalidate   bool
	onlyIfCached                      bool
	maxAge, sMaxAge, minFresh         int64
}

// maxDelta caps delta-seconds values: RFC 9111 §1.2.2 lets a cache treat
// anything larger as 2^31.
const maxDelta = 1 << 31

// parseCacheControl reads every Cache-Control value in vals (a list of
// field values, each a comma-separated list of directives). Unknown
// directives are ignored. A max-age, s-maxage or min-fresh whose value is
// not delta-seconds counts as 0: RFC 9111 §4.2.1 has a cache treat an
// invalid freshness value as stale. Names are case-insensitive; values may
// be quoted (RFC 9110 §5.6.4), which §5.2 tolerates in a recipient.
func parseCacheControl(d *directives, v []byte) {
	for len(v) > 0 {
		// One directive: token [ "=" ( token / quoted-string ) ].
		i := 0
		for i < len(v) && v[i] != ',' && v[i] != '=' {
			i++
		}
		name := http1.TrimOWS(v[:i])
		var val []byte
		hasVal := false
		v = v[i:]
		if len(v) > 0 && v[0] == '=' {
			hasVal = true
			v = v[1:]
			v = trimLeftOWS(v)
			if len(v) > 0 && v[0] == '"' {
				j := 1
				for j < len(v) && v[j] != '"' {
					if v[j] == '\\' && j+1 < len(v) {
						j++
					}
					j++
				}
				val = v[1:min(j, len(v))]
				v = v[min(j+1, len(v)):]
				for len(v) > 0 && v[0] != ',' { // junk after the quote
					v = v[1:]
				}
			} else {
				j := 0
				for j < len(v) && v[j] != ',' {
					j++
				}
				val = http1.TrimOWS(v[:j])
				v = v[j:]
			}
		}
		if len(v) > 0 && v[0] == ',' {
			v = v[1:]
		}
		switch {
		case eqFold(name, "no-store"):
			d.noStore = true
		case eqFold(name, "no-cache"):
			d.noCache = true // a field-list (no-cache="x") is treated as unqualified
		case eqFold(name, "private"):
			d.private = true // likewise: a shared cache does not store it
		case eqFold(name, "public"):
			d.public = true
		case eqFold(name, "must-revalidate"):
			d.mustRevalidate = true
		case eqFold(name, "proxy-revalidate"):
			d.proxyRevalidate = true
		case eqFold(name, "only-if-cached"):
			d.onlyIfCached = true
		case eqFold(name, "max-age"):
			d.maxAge = mergeDelta(d.maxAge, deltaSeconds(val, hasVal))
		case eqFold(name, "s-maxage"):
			d.sMaxAge = mergeDelta(d.sMaxAge, deltaSeconds(val, hasVal))
		case eqFold(name, "min-fresh"):
			d.minFresh = mergeDelta(d.minFresh, deltaSeconds(val, hasVal))
		}
	}
}

// newDirectives returns directives with every delta absent.
func newDirectives() directives { return directives{maxAge: -1, sMaxAge: -1, minFresh: -1} }

// mergeDelta keeps the smallest of repeated values: a directive given
// twice with different values is conflicting, and the smaller freshness is
// the safe reading.
func mergeDelta(old, n int64) int64 {
	if old < 0 || n < old {
		return n
	}
	return old
}

// deltaSeconds parses delta-seconds (1*DIGIT), capping at maxDelta; an
// absent or invalid value is 0.
func deltaSeconds(v []byte, ok bool) int64 {
	if !ok || len(v) == 0 {
		return 0
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta)
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate and the
// two obsolete forms). ok is false for anything else.
func parseHTTPDate(v []byte) (t time.Time, ok bool) {
	if len(v) == 0 || len(v) > 64 {
		return time.Time{}, false
	}
	t, err := http.ParseTime(string(v))
	return t, err == nil
}

// maxVary bounds how many field names a Vary value may list.
const maxVary = 16

// parseVary appends the lowercased field names of a Vary value to names.
// star is true for "*" (the response varies on things outside the
// request: not storable); ok is false for a list too long or not made of
// tokens.
func parseVary(names []string, v []byte) (out []string, star, ok bool) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		name := http1.TrimOWS(v[:i])
		v = v[min(i+1, len(v)):]
		if len(name) == 0 {
			continue
		}
		if len(name) == 1 && name[0] == '*' {
			return names, true, true
		}
		for _, c := range name {
			if !isTokenChar(c) {
				return names, false, false
			}
		}
		if len(names) >= maxVary {
			return names, false, false
		}
		n := lower(name)
		dup := false
		for _, x := range names {
			if x == n {
				dup = true
			}
		}
		if !dup {
			names = append(names, n)
		}
	}
	return names, false, true
}

func lower(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// eqFold reports whether b equals the lowercase ASCII s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimLeftOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// etagMatch reports whether the If-None-Match value v lists etag, by the
// weak comparison RFC 9110 §13.1.2 prescribes for If-None-Match ("*"
// matches any).
func etagMatch(v, etag []byte) bool {
	if len(etag) == 0 {
		return false
	}
	want := weakless(etag)
	for len(v) > 0 {
		v = trimLeftOWS(v)
		if len(v) > 0 && v[0] == '*' {
			return true
		}
		w := v
		if len(w) >= 2 && w[0] == 'W' && w[1] == '/' {
			w = w[2:]
		}
		if len(w) == 0 || w[0] != '"' {
			// Not an entity-tag: skip to the next list member.
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			v = v[min(i+1, len(v)):]
			continue
		}
		j := 1
		for j < len(w) && w[j] != '"' {
			j++
		}
		if j < len(w) && string(w[:j+1]) == string(want) {
			return true
		}
		v = w[min(j+1, len(w)):]
		for len(v) > 0 && v[0] != ',' {
			v = v[1:]
		}
		if len(v) > 0 {
			v = v[1:]
		}
	}
	return false
}

func weakless(t []byte) []byte {
	if len(t) >= 2 && t[0] == 'W' && t[1] == '/' {
		return t[2:]
	}
	return t
}
