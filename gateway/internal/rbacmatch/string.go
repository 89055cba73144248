package rbacmatch

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// StringMatcher is Envoy's StringMatcher as a TOML table: exactly one of
// Exact, Prefix, Suffix, Contains and Regex (RE2, matched against the whole
// value, Envoy's safe_regex), case-insensitively (ASCII) with IgnoreCase.
type StringMatcher struct {
	Exact      *string `toml:"exact"`
	Prefix     string  `toml:"prefix"`
	Suffix     string  `toml:"suffix"`
	Contains   string  `toml:"contains"`
	Regex      string  `toml:"regex"`
	IgnoreCase bool    `toml:"ignore_case"`
}

// Match kinds.
const (
	kindExact byte = iota + 1
	kindPrefix
	kindSuffix
	kindContains
	kindRegex
)

// Matcher is a compiled StringMatcher. Its methods do not allocate and are
// safe for concurrent use.
type Matcher struct {
	kind       byte
	s          string
	re         *regexp.Regexp
	ignoreCase bool
}

// Compile checks m and compiles it.
func (m *StringMatcher) Compile() (Matcher, error) {
	var out Matcher
	n := 0
	if m.Exact != nil {
		n++
		out = Matcher{kind: kindExact, s: *m.Exact}
	}
	for _, c := range []struct {
		kind byte
		s    string
	}{{kindPrefix, m.Prefix}, {kindSuffix, m.Suffix}, {kindContains, m.Contains}, {kindRegex, m.Regex}} {
		if c.s != "" {
			n++
			out = Matcher{kind: c.kind, s: c.s}
		}
	}
	if n != 1 {
		return Matcher{}, errors.New("set exactly one of exact, prefix, suffix, contains and regex (non-empty)")
	}
	out.ignoreCase = m.IgnoreCase
	if out.kind == kindRegex {
		if m.IgnoreCase {
			return Matcher{}, errors.New("ignore_case does not apply to regex: use (?i)")
		}
		re, err := regexp.Compile(`^(?:` + m.Regex + `)$`)
		if err != nil {
			return Matcher{}, fmt.Errorf("regex: %v", err)
		}
		out.re = re
	}
	return out, nil
}

// Match reports whether v matches.
func (m *Matcher) Match(v []byte) bool {
	if m.kind == kindRegex {
		return m.re.Match(v)
	}
	return m.match(string(v)) // no copy: the conversion does not escape
}

// MatchString reports whether v matches.
func (m *Matcher) MatchString(v string) bool {
	if m.kind == kindRegex {
		return m.re.MatchString(v)
	}
	return m.match(v)
}

func (m *Matcher) match(v string) bool {
	s := m.s
	switch m.kind {
	case kindExact:
		return len(v) == len(s) && m.eq(v, s)
	case kindPrefix:
		return len(v) >= len(s) && m.eq(v[:len(s)], s)
	case kindSuffix:
		return len(v) >= len(s) && m.eq(v[len(v)-len(s):], s)
	case kindContains:
		if !m.ignoreCase {
			return strings.Contains(v, s)
		}
		for i := 0; i+len(s) <= len(v); i++ {
			if m.eq(v[i:i+len(s)], s) {
				return true
			}
		}
	}
	return false
}

// eq compares two strings of the same length, ASCII-case-insensitively
// with ignoreCase.
func (m *Matcher) eq(a, b string) bool {
	if !m.ignoreCase {
		return a == b
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
