package cors

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestOriginMatchers(t *testing.T) {
	for _, tc := range []struct {
		m      OriginMatcher
		origin string
		want   bool
	}{
		{OriginMatcher{Exact: "https://a.com"}, "https://a.com", true},
		{OriginMatcher{Exact: "https://a.com"}, "https://A.com", false},
		{OriginMatcher{Exact: "https://a.com", IgnoreCase: true}, "https://A.com", true},
		{OriginMatcher{Prefix: "https://"}, "https://x", true},
		{OriginMatcher{Suffix: ".a.com"}, "https://b.a.com", true},
		{OriginMatcher{Suffix: ".a.com"}, "https://b.a.com.evil", false},
		{OriginMatcher{Contains: "a.com"}, "http://xa.comy", true},
		{OriginMatcher{Regex: `https://[a-z]+\.a\.com`}, "https://b.a.com", true},
		{OriginMatcher{Regex: `https://[a-z]+\.a\.com`}, "https://b.a.com.evil.net", false},
		{OriginMatcher{Regex: `https://[a-z]+\.a\.com`, IgnoreCase: true}, "https://B.A.COM", true},
	} {
		m, err := compile(tc.m)
		if err != nil {
			t.Fatalf("%+v: %v", tc.m, err)
		}
		if got := m.match([]byte(tc.origin)); got != tc.want {
			t.Errorf("%+v matches %q: %v, want %v", tc.m, tc.origin, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		c   Config
		key string
	}{
		{Config{}, "allow_origin_string_match"},
		{Config{AllowOriginStringMatch: []OriginMatcher{{}}}, "allow_origin_string_match[0]"},
		{Config{AllowOriginStringMatch: []OriginMatcher{{Exact: "a", Prefix: "b"}}}, "allow_origin_string_match[0]"},
		{Config{AllowOriginStringMatch: []OriginMatcher{{Regex: "("}}}, "allow_origin_string_match[0]"},
		{Config{AllowOriginStringMatch: []OriginMatcher{{Exact: "a"}}, MaxAge: "1h"}, "max_age"},
		{Config{AllowOriginStringMatch: []OriginMatcher{{Exact: "a"}}, AllowHeaders: "a\r\nb"}, "allow_headers"},
	} {
		_, err := tc.c.Build(&registry.BuildContext{})
		fe, ok := err.(*registry.FieldError)
		if !ok || fe.Key != tc.key {
			t.Errorf("%+v: error %v, want one naming %s", tc.c, err, tc.key)
		}
	}
}

// TestOriginMatchDoesNotAllocate: the Origin of every CORS request is
// matched, case-insensitive matchers included, without an allocation.
func TestOriginMatchDoesNotAllocate(t *testing.T) {
	fa, err := (&Config{AllowOriginStringMatch: []OriginMatcher{
		{Exact: "https://a.com", IgnoreCase: true}, {Suffix: ".B.com", IgnoreCase: true}, {Regex: `https://c\.com`},
	}}).Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	origin := []byte("https://www.b.COM")
	ok := false
	if n := testing.AllocsPerRun(100, func() { ok = fa.(*Factory).allowed(origin) }); n != 0 || !ok {
		t.Errorf("allowed %v with %v allocations; want true with none", ok, n)
	}
}

// TestPerRouteMerge: a per-route policy takes each key it leaves out from
// the less specific level's, as Envoy's CORS filter reads its policies key
// by key; allow_credentials = false set on the route beats a virtual
// host's true; origins are optional in a per-route table only.
func TestPerRouteMerge(t *testing.T) {
	build := func(c Config) *policy {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		v, err := c.BuildPerRoute(nil)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*policy)
	}
	yes, no := true, false
	vh := build(Config{AllowOriginStringMatch: []OriginMatcher{{Exact: "https://vh"}}, AllowMethods: "DELETE", MaxAge: "60",
		AllowCredentials: &yes, ForwardNotMatchingPreflights: &no})
	route := build(Config{AllowHeaders: "x-token", AllowCredentials: &no})
	m := route.MergePerRoute(vh).(*policy)
	if !m.allowed([]byte("https://vh")) || m.methods != "DELETE" || m.headers != "x-token" || m.maxAge != "60" ||
		m.credentials || m.forward || m.expose != "" {
		t.Errorf("merged %+v", m)
	}
	if route.methods != "" || len(route.origins) != 0 || vh.headers != "" {
		t.Error("the merge modified its inputs")
	}
	// Nothing sets origins: no origin is allowed, as in Envoy.
	if build(Config{AllowMethods: "GET"}).allowed([]byte("https://vh")) {
		t.Error("a policy without origins allows one")
	}
	if _, err := (&Config{AllowMethods: "GET"}).Build(&registry.BuildContext{}); err == nil {
		t.Error("the filter's own policy needs origins")
	}
}
