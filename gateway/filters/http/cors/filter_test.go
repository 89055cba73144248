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
		if got := m.match(tc.origin); got != tc.want {
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
