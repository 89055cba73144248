// Package headermatch is the request header matcher of routes (Envoy's
// HeaderMatcher in the shape a route's match.headers takes it: exact,
// prefix, regex or present, and invert), compiled once per config and
// shared by the router and the filters that match requests as routes do
// (fault, the access log's header_filter).
package headermatch

import (
	"regexp"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Config is one header matcher as written in TOML. With none of Exact,
// Prefix, Regex and Present set it matches when the header is present.
type Config struct {
	// Name is a lowercase header name, or one of the pseudo-headers
	// :method, :path, :authority (also "host") and :scheme, which read
	// the request head.
	Name   string `toml:"name"`
	Exact  string `toml:"exact"`
	Prefix string `toml:"prefix"`
	// Regex (RE2) must match the whole value.
	Regex   string `toml:"regex"`
	Present *bool  `toml:"present"`
	// Invert negates the result.
	Invert bool `toml:"invert"`
}

// The parts of the request head a matcher may name.
const (
	headField byte = iota
	headMethod
	headPath
	headAuthority
	headScheme
)

var pseudo = map[string]byte{":method": headMethod, ":path": headPath, ":authority": headAuthority, "host": headAuthority, ":scheme": headScheme}

// Matcher is a compiled Config. It is immutable; Match does not allocate.
type Matcher struct {
	name    string
	head    byte
	exact   *string
	prefix  *string
	regex   *regexp.Regexp
	present *bool
	invert  bool
}

// Compile checks c and compiles it. An error is a *registry.FieldError
// whose key is relative to the matcher's table.
func (c *Config) Compile() (Matcher, error) {
	m := Matcher{name: c.Name, head: pseudo[c.Name], present: c.Present, invert: c.Invert}
	if m.head == headField && !IsLowerToken(c.Name) {
		return m, registry.Errorf("name", "header name %q must be a non-empty lowercase token or :method, :path, :authority, :scheme", c.Name)
	}
	n := 0
	if c.Exact != "" {
		n++
		m.exact = &c.Exact
	}
	if c.Prefix != "" {
		n++
		m.prefix = &c.Prefix
	}
	if c.Regex != "" {
		n++
		re, err := regexp.Compile("^(?:" + c.Regex + ")$")
		if err != nil {
			return m, registry.Errorf("regex", "invalid regex: %v", err)
		}
		m.regex = re
	}
	if c.Present != nil {
		n++
	}
	if n > 1 {
		return m, registry.Errorf("", "set at most one of exact, prefix, regex and present")
	}
	return m, nil
}

// Match reports whether h matches. A repeated header matches on its first
// value.
func (m *Matcher) Match(h *httpfilter.RequestHeaders) bool {
	var v []byte
	switch m.head {
	case headMethod:
		v = h.Method
	case headPath:
		v = h.Path
	case headAuthority:
		v = h.Authority
	case headScheme:
		v = h.Scheme
	default:
		v = h.Get(m.name)
	}
	var ok bool
	switch {
	case m.exact != nil:
		ok = v != nil && string(v) == *m.exact
	case m.prefix != nil:
		ok = v != nil && strings.HasPrefix(string(v), *m.prefix)
	case m.regex != nil:
		ok = v != nil && m.regex.Match(v)
	case m.present != nil:
		ok = (v != nil) == *m.present
	default:
		ok = v != nil
	}
	return ok != m.invert
}

// IsLowerToken reports whether s is a non-empty RFC 9110 token without
// upper-case letters: a header name as sluice's config writes them.
func IsLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
