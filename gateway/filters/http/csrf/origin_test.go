package csrf

import (
	"bytes"
	"net/url"
	"testing"
)

func TestHostAndPort(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com":             "example.com",
		"http://example.com:8080/a/b?c#d": "example.com:8080",
		"https://user:pw@example.com/":    "example.com",
		"http://[::1]:80/x":               "[::1]:80",
		"null":                            "null",
		"example.com":                     "example.com",
		"http://":                         "http://",
		"http://a:b":                      "http://a:b",
		"http://[zz]/":                    "http://[zz]/",
		"1http://a":                       "1http://a",
		"":                                "",
	} {
		if got := string(HostAndPort([]byte(in))); got != want {
			t.Errorf("HostAndPort(%q) = %q, want %q", in, got, want)
		}
	}
	if got := string(SourceOrigin(nil, []byte("https://r.example/page"))); got != "r.example" {
		t.Errorf("Referer fallback: %q", got)
	}
	if got := string(SourceOrigin([]byte("https://o.example"), []byte("https://r.example/page"))); got != "o.example" {
		t.Errorf("Origin first: %q", got)
	}
	if got := string(TargetOrigin([]byte("example.com:8443"))); got != "example.com:8443" {
		t.Errorf("TargetOrigin: %q", got)
	}
}

func TestPolicyAllows(t *testing.T) {
	c := &Config{}
	if err := toml(c, `additional_origins = [{ exact = "ok.example" }]`); err != nil {
		t.Fatal(err)
	}
	p, err := c.compile()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{{"a.example", "A.example", true}, {"ok.example", "b.example", true}, {"", "b.example", false},
		{"a.example:80", "a.example", false}, {"evil.example", "b.example", false}} {
		if got := p.allows([]byte(tc.src), []byte(tc.dst)); got != tc.want {
			t.Errorf("allows(%q, %q) = %v", tc.src, tc.dst, got)
		}
	}
}

// FuzzHostAndPort feeds arbitrary Origin and Referer values to the
// parser: it must not panic nor allocate a new value; what it returns is
// either the value itself or a part of it, and for URLs net/url takes for
// absolute ones with a plain host, their host[:port].
func FuzzHostAndPort(f *testing.F) {
	for _, s := range []string{"https://a.example", "http://a:1/b", "null", "http://u@h:2?q", "x://[::1]:3#f", "http://", ":", "a:b//c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got := HostAndPort(v)
		if len(v) > 0 && len(got) == 0 {
			t.Fatalf("%q gave nothing", v)
		}
		if !bytes.Contains(v, got) {
			t.Fatalf("%q gave %q, not a part of it", v, got)
		}
		if bytes.Equal(got, v) {
			return
		}
		u, err := url.Parse(string(v))
		if err != nil || u.Opaque != "" || bytes.IndexByte(got, '%') >= 0 {
			return
		}
		if u.Host != string(got) {
			t.Fatalf("%q gave %q; net/url says host %q", v, got, u.Host)
		}
	})
}
