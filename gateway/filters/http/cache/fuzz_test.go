package cache

import (
	"testing"
	"time"
)

// FuzzParseCacheControl: any bytes parse without panicking, and delta
// values stay within 0 … 2^31 or absent.
func FuzzParseCacheControl(f *testing.F) {
	f.Add([]byte("max-age=60, s-maxage=5, no-cache=\"a,b\""))
	f.Fuzz(func(t *testing.T, v []byte) {
		d := newDirectives()
		parseCacheControl(&d, v)
		for _, x := range []int64{d.maxAge, d.sMaxAge, d.minFresh} {
			if x < -1 || x > maxDelta {
				t.Fatalf("%q: delta %d out of range", v, x)
			}
		}
	})
}

// FuzzParseVary: names are lowercase tokens, at most maxVary, no
// duplicates.
func FuzzParseVary(f *testing.F) {
	f.Add([]byte("Accept-Encoding, *"))
	f.Fuzz(func(t *testing.T, v []byte) {
		names, _, ok := parseVary(nil, v)
		if len(names) > maxVary {
			t.Fatalf("%q: %d names", v, len(names))
		}
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" || !isToken(n) || seen[n] || lower([]byte(n)) != n {
				t.Fatalf("%q: bad name %q (ok %v)", v, n, ok)
			}
			seen[n] = true
		}
	})
}

// FuzzFreshness: any Cache-Control, Date, Expires and Age values give a
// non-negative lifetime and initial age, and parse no date before year 0.
func FuzzFreshness(f *testing.F) {
	f.Add([]byte("max-age=10"), []byte("Sun, 06 Nov 1994 08:49:37 GMT"), []byte("Sunday, 06-Nov-94 08:49:37 GMT"), []byte("5"))
	f.Fuzz(func(t *testing.T, cc, date, expires, age []byte) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		fr := assess(fields("cache-control", string(cc), "date", string(date), "expires", string(expires), "age", string(age)),
			now.Add(-time.Second), now, false)
		if fr.lifetime < 0 || fr.initialAge < 0 {
			t.Fatalf("lifetime %v, initial age %v", fr.lifetime, fr.initialAge)
		}
		_, _ = parseHTTPDate(date)
	})
}

// FuzzETagMatch: an If-None-Match list never panics and always matches
// the tag it consists of.
func FuzzETagMatch(f *testing.F) {
	f.Add([]byte(`W/"a", "b"`), []byte(`"b"`))
	f.Fuzz(func(t *testing.T, inm, etag []byte) {
		_ = etagMatch(inm, etag)
		if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' && !containsAny(etag[1:len(etag)-1], "\",") && !etagMatch(etag, etag) {
			t.Fatalf("%s does not match itself", etag)
		}
	})
}

func containsAny(b []byte, chars string) bool {
	for _, c := range b {
		for i := 0; i < len(chars); i++ {
			if c == chars[i] {
				return true
			}
		}
	}
	return false
}
