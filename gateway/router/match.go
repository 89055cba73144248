package router

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// Route matching beyond the path: case-insensitive paths and query
// parameters, as Envoy's RouteMatch case_sensitive and query_parameters.

// matchesFolded matches path against the route's path or prefix with ASCII
// letters folded (case_sensitive = false).
func (r *Route) matchesFolded(path []byte) bool {
	if r.prefix != "" {
		return len(path) >= len(r.prefix) && equalFold(path[:len(r.prefix)], r.prefix)
	}
	return len(path) == len(r.path) && equalFold(path, r.path)
}

// equalFold reports whether b and s, of the same length, are equal with
// ASCII letters folded. Unlike bytes.EqualFold it folds nothing else, as
// Envoy's case-insensitive path matching does.
func equalFold(b []byte, s string) bool {
	for i := range len(b) {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// queryKind is how a queryMatcher compares the parameter's value.
type queryKind uint8

const (
	queryPresent queryKind = iota // present (or, with !want, absent)
	queryExact
	queryPrefix
	querySuffix
	queryContains
	queryRegex
)

// queryMatcher is one compiled query_parameters entry.
type queryMatcher struct {
	name string
	kind queryKind
	// value is what exact, prefix, suffix and contains compare with
	// (lowercased when fold).
	value string
	fold  bool
	re    *regexp.Regexp
	// want is present's value: whether the parameter must be present.
	want bool
}

func newQueryMatcher(q *config.QueryParameterMatcher) (queryMatcher, error) {
	m := queryMatcher{name: q.Name, kind: queryPresent, want: true, fold: q.IgnoreCase}
	switch {
	case q.Exact != "":
		m.kind, m.value = queryExact, q.Exact
	case q.Prefix != "":
		m.kind, m.value = queryPrefix, q.Prefix
	case q.Suffix != "":
		m.kind, m.value = querySuffix, q.Suffix
	case q.Contains != "":
		m.kind, m.value = queryContains, q.Contains
	case q.Regex != "":
		re, err := regexp.Compile("^(?:" + q.Regex + ")$")
		if err != nil {
			return m, fmt.Errorf("regex: %w", err)
		}
		m.kind, m.re = queryRegex, re
	case q.Present != nil:
		m.want = *q.Present
	}
	if m.fold {
		m.value = asciiLower(m.value)
	}
	return m, nil
}

// asciiLower returns s with ASCII letters lowercased.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// matchesQuery reports whether every query matcher of the route matches
// the query of target (the request's :path).
func (r *Route) matchesQuery(target []byte) bool {
	_, query, _ := bytes.Cut(target, []byte{'?'})
	query, _, _ = bytes.Cut(query, []byte{'#'})
	for i := range r.query {
		if !r.query[i].matches(query) {
			return false
		}
	}
	return true
}

// matches applies m to query (the part of the target after '?'). As in
// Envoy, only the first parameter named m.name counts, and names and
// values are compared without percent-decoding.
func (m *queryMatcher) matches(query []byte) bool {
	v, ok := firstQueryValue(query, m.name)
	if m.kind == queryPresent {
		return ok == m.want
	}
	if !ok {
		return false
	}
	switch m.kind {
	case queryExact:
		return len(v) == len(m.value) && m.equal(v, m.value)
	case queryPrefix:
		return len(v) >= len(m.value) && m.equal(v[:len(m.value)], m.value)
	case querySuffix:
		return len(v) >= len(m.value) && m.equal(v[len(v)-len(m.value):], m.value)
	case queryContains:
		for i := 0; i+len(m.value) <= len(v); i++ {
			if m.equal(v[i:i+len(m.value)], m.value) {
				return true
			}
		}
		return false
	default: // queryRegex
		return m.re.Match(v)
	}
}

// equal compares b with s (lowercase when m.fold), both of one length.
func (m *queryMatcher) equal(b []byte, s string) bool {
	if m.fold {
		return equalFold(b, s)
	}
	return string(b) == s
}

// firstQueryValue returns the value of the first parameter of query named
// name ("" for a parameter without "="), and whether there is one.
func firstQueryValue(query []byte, name string) ([]byte, bool) {
	for len(query) > 0 {
		var param []byte
		param, query, _ = bytes.Cut(query, []byte{'&'})
		k, v, _ := bytes.Cut(param, []byte{'='})
		if string(k) == name {
			return v, true
		}
	}
	return nil, false
}
