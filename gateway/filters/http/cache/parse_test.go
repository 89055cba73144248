package cache

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

func TestParseCacheControl(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want directives
	}{
		{"", newDirectives()},
		{"max-age=60", directives{maxAge: 60, sMaxAge: -1, minFresh: -1}},
		{"Max-Age=60, S-MAXAGE=5", directives{maxAge: 60, sMaxAge: 5, minFresh: -1}},
		{`max-age="30"`, directives{maxAge: 30, sMaxAge: -1, minFresh: -1}},
		{"max-age=abc", directives{maxAge: 0, sMaxAge: -1, minFresh: -1}},
		{"max-age", directives{maxAge: 0, sMaxAge: -1, minFresh: -1}},
		{"max-age=60, max-age=10", directives{maxAge: 10, sMaxAge: -1, minFresh: -1}},
		{"max-age=99999999999999999999", directives{maxAge: maxDelta, sMaxAge: -1, minFresh: -1}},
		{"no-store", directives{noStore: true, maxAge: -1, sMaxAge: -1, minFresh: -1}},
		{` private="set-cookie, x" , no-cache`, directives{private: true, noCache: true, maxAge: -1, sMaxAge: -1, minFresh: -1}},
		{`no-cache="a,b", public,must-revalidate`, directives{noCache: true, public: true, mustRevalidate: true, maxAge: -1, sMaxAge: -1, minFresh: -1}},
		{"x-ext=\"q\\\"uoted,max-age=5\", max-age=7", directives{maxAge: 7, sMaxAge: -1, minFresh: -1}},
		{",,only-if-cached,, min-fresh=3", directives{onlyIfCached: true, maxAge: -1, sMaxAge: -1, minFresh: 3}},
		{"nostore, no-storex, max-age-x=1", newDirectives()},
	} {
		got := newDirectives()
		parseCacheControl(&got, []byte(tc.in))
		if got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseVary(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		star bool
		ok   bool
	}{
		{"Accept-Encoding", []string{"accept-encoding"}, false, true},
		{"accept-encoding, User-Agent ,accept-encoding", []string{"accept-encoding", "user-agent"}, false, true},
		{"*", nil, true, true},
		{"a, *", []string{"a"}, true, true},
		{"a b", nil, false, false},
		{"", nil, false, true},
	} {
		got, star, ok := parseVary(nil, []byte(tc.in))
		if star != tc.star || ok != tc.ok || (ok && !star && !sameNames(got, tc.want)) {
			t.Errorf("%q: %v %v %v, want %v %v %v", tc.in, got, star, ok, tc.want, tc.star, tc.ok)
		}
	}
}

func TestETagMatch(t *testing.T) {
	for _, tc := range []struct {
		inm, etag string
		want      bool
	}{
		{`"a"`, `"a"`, true},
		{`W/"a"`, `"a"`, true},
		{`"a"`, `W/"a"`, true},
		{`"b", "a"`, `"a"`, true},
		{`*`, `"a"`, true},
		{`"b"`, `"a"`, false},
		{`a`, `"a"`, false},
		{`"a`, `"a"`, false},
		{`"a"`, ``, false},
	} {
		if got := etagMatch([]byte(tc.inm), []byte(tc.etag)); got != tc.want {
			t.Errorf("If-None-Match %s vs %s: %v, want %v", tc.inm, tc.etag, got, tc.want)
		}
	}
}

func fields(kv ...string) []httpfilter.Field {
	var h httpfilter.Headers
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h.Fields
}

// TestAssessFreshness checks the freshness lifetime (RFC 9111 §4.2.1:
// s-maxage over max-age over Expires - Date) and the initial age (§4.2.3)
// of response heads, and which heads are not storable.
func TestAssessFreshness(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	httpDate := func(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT") }
	req := now.Add(-2 * time.Second)
	for _, tc := range []struct {
		name     string
		f        []httpfilter.Field
		auth     bool
		ok       bool
		lifetime time.Duration
		age      time.Duration
	}{
		{"max-age", fields("cache-control", "max-age=60"), false, true, 60 * time.Second, 2 * time.Second},
		{"s-maxage wins", fields("cache-control", "max-age=60, s-maxage=5"), false, true, 5 * time.Second, 2 * time.Second},
		{"expires minus date", fields("date", httpDate(now.Add(-10*time.Second)), "expires", httpDate(now.Add(20*time.Second))), false, true, 30 * time.Second, 10 * time.Second},
		{"invalid expires is past", fields("expires", "0"), false, true, 0, 2 * time.Second},
		{"age header", fields("cache-control", "max-age=60", "age", "30"), false, true, 60 * time.Second, 32 * time.Second},
		{"no freshness", fields("etag", `"x"`), false, false, 0, 0},
		{"no-cache stored", fields("cache-control", "no-cache, max-age=60"), false, true, 0, 2 * time.Second},
		{"no-store", fields("cache-control", "max-age=60, no-store"), false, false, 0, 0},
		{"private", fields("cache-control", "private, max-age=60"), false, false, 0, 0},
		{"set-cookie", fields("cache-control", "max-age=60", "set-cookie", "a=b"), false, false, 0, 0},
		{"authorization", fields("cache-control", "max-age=60"), true, false, 0, 0},
		{"authorization public", fields("cache-control", "public, max-age=60"), true, true, 60 * time.Second, 2 * time.Second},
		{"authorization s-maxage", fields("cache-control", "s-maxage=60"), true, true, 60 * time.Second, 2 * time.Second},
	} {
		fr := assess(tc.f, req, now, tc.auth)
		if fr.ok != tc.ok || (tc.ok && (fr.lifetime != tc.lifetime || fr.initialAge != tc.age)) {
			t.Errorf("%s: %+v, want ok %v lifetime %v age %v", tc.name, fr, tc.ok, tc.lifetime, tc.age)
		}
	}
}
