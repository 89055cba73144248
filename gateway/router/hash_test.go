package router

import (
	"math/bits"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/lb"
)

func hashOf(s string) uint64 { return lb.HashString(s, 0) }

// request builds a request head; fields are "name: value" strings.
func request(path string, fields ...string) *httpfilter.RequestHeaders {
	r := &httpfilter.RequestHeaders{Method: []byte("GET"), Scheme: []byte("http"), Authority: []byte("api.example.com"), Path: []byte(path)}
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ": ")
		r.Add(name, value)
	}
	return r
}

func TestHasherExtractsEachPolicysValue(t *testing.T) {
	client := netip.MustParseAddr("192.0.2.7")
	for _, tc := range []struct {
		name   string
		policy HashPolicyConfig
		req    *httpfilter.RequestHeaders
		client netip.Addr
		want   uint64
		ok     bool
	}{
		{"header", HashPolicyConfig{Header: "x-user"}, request("/", "x-user: alice"), client, hashOf("alice"), true},
		{"header name is case-insensitive", HashPolicyConfig{Header: "X-User"}, request("/", "x-user: alice"), client, hashOf("alice"), true},
		{"absent header", HashPolicyConfig{Header: "x-user"}, request("/", "x-other: alice"), client, 0, false},
		{"empty header value still hashes", HashPolicyConfig{Header: "x-user"}, request("/", "x-user: "), client, hashOf(""), true},
		{"repeated header values are sorted and chained", HashPolicyConfig{Header: "x-tag"}, request("/", "x-tag: b", "x-tag: a"), client,
			lb.HashString("b", lb.HashString("a", 0)), true},
		{"authority pseudo-header", HashPolicyConfig{Header: ":authority"}, request("/"), client, hashOf("api.example.com"), true},
		{"host names the authority", HashPolicyConfig{Header: "host"}, request("/"), client, hashOf("api.example.com"), true},
		{"path pseudo-header", HashPolicyConfig{Header: ":path"}, request("/a?b=c"), client, hashOf("/a?b=c"), true},
		{"cookie", HashPolicyConfig{Cookie: "sid"}, request("/", "cookie: a=1; sid=xyz; b=2"), client, hashOf("xyz"), true},
		{"cookie in a second header", HashPolicyConfig{Cookie: "sid"}, request("/", "cookie: a=1", "cookie: sid=xyz"), client, hashOf("xyz"), true},
		{"quoted cookie", HashPolicyConfig{Cookie: "sid"}, request("/", `cookie: sid="xyz"`), client, hashOf("xyz"), true},
		{"cookie name is case-sensitive", HashPolicyConfig{Cookie: "sid"}, request("/", "cookie: SID=xyz"), client, 0, false},
		{"cookie name must match whole", HashPolicyConfig{Cookie: "sid"}, request("/", "cookie: xsid=1; sidx=2"), client, 0, false},
		{"empty cookie gives no hash", HashPolicyConfig{Cookie: "sid"}, request("/", "cookie: sid="), client, 0, false},
		{"absent cookie", HashPolicyConfig{Cookie: "sid"}, request("/"), client, 0, false},
		{"source ip v4", HashPolicyConfig{SourceIP: true}, request("/"), client, hashOf("192.0.2.7"), true},
		{"source ip v4-mapped", HashPolicyConfig{SourceIP: true}, request("/"), netip.MustParseAddr("::ffff:192.0.2.7"), hashOf("192.0.2.7"), true},
		{"source ip v6", HashPolicyConfig{SourceIP: true}, request("/"), netip.MustParseAddr("2001:db8::1"), hashOf("2001:db8::1"), true},
		{"unknown source ip", HashPolicyConfig{SourceIP: true}, request("/"), netip.Addr{}, 0, false},
		{"query parameter", HashPolicyConfig{QueryParameter: "user"}, request("/p?a=1&user=bob&user=eve"), client, hashOf("bob"), true},
		{"query parameter decoded", HashPolicyConfig{QueryParameter: "user id"}, request("/p?user%20id=b%C3%B6b+x"), client, hashOf("böb x"), true},
		{"query parameter without value", HashPolicyConfig{QueryParameter: "flag"}, request("/p?flag&x=1"), client, hashOf(""), true},
		{"invalid escape kept", HashPolicyConfig{QueryParameter: "q"}, request("/p?q=100%ZZ%4"), client, hashOf("100%ZZ%4"), true},
		{"query stops at fragment", HashPolicyConfig{QueryParameter: "q"}, request("/p?q=1#frag"), client, hashOf("1"), true},
		{"no query", HashPolicyConfig{QueryParameter: "user"}, request("/p"), client, 0, false},
		{"parameter name must match whole", HashPolicyConfig{QueryParameter: "user"}, request("/p?username=bob"), client, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHasher([]HashPolicyConfig{tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := h.Hash(tc.req, tc.client)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Hash = %#x, %v; want %#x, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHasherCombinesPoliciesAsEnvoy(t *testing.T) {
	client := netip.MustParseAddr("192.0.2.7")
	req := request("/p?user=bob", "x-user: alice", "cookie: sid=xyz")
	mix := func(old, v uint64) uint64 { return bits.RotateLeft64(old, 1) ^ v }
	for _, tc := range []struct {
		name     string
		policies []HashPolicyConfig
		want     uint64
		ok       bool
	}{
		{"two policies mix", []HashPolicyConfig{{Header: "x-user"}, {Cookie: "sid"}},
			mix(hashOf("alice"), hashOf("xyz")), true},
		{"same policy twice does not cancel out", []HashPolicyConfig{{Header: "x-user"}, {Header: "x-user"}},
			mix(hashOf("alice"), hashOf("alice")), true},
		{"missing value is skipped", []HashPolicyConfig{{Header: "x-none"}, {Cookie: "sid"}},
			hashOf("xyz"), true},
		{"terminal with a hash stops", []HashPolicyConfig{{Header: "x-user", Terminal: true}, {Cookie: "sid"}},
			hashOf("alice"), true},
		{"terminal stops on an earlier hash", []HashPolicyConfig{{Header: "x-user"}, {Header: "x-none", Terminal: true}, {Cookie: "sid"}},
			hashOf("alice"), true},
		{"terminal without a hash goes on", []HashPolicyConfig{{Header: "x-none", Terminal: true}, {SourceIP: true}},
			hashOf("192.0.2.7"), true},
		{"three policies", []HashPolicyConfig{{Header: "x-user"}, {Cookie: "sid"}, {QueryParameter: "user"}},
			mix(mix(hashOf("alice"), hashOf("xyz")), hashOf("bob")), true},
		{"nothing yields", []HashPolicyConfig{{Header: "x-none"}, {Cookie: "none"}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHasher(tc.policies)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := h.Hash(req, client)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Hash = %#x, %v; want %#x, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	var none *Hasher
	if _, ok := none.Hash(req, client); ok {
		t.Error("nil Hasher yielded a hash")
	}
}

func TestNewHasherRejectsAmbiguousPolicy(t *testing.T) {
	if h, err := NewHasher(nil); h != nil || err != nil {
		t.Errorf("NewHasher(nil) = %v, %v; want nil, nil", h, err)
	}
	for _, p := range []HashPolicyConfig{{}, {Terminal: true}, {Header: "a", Cookie: "b"}, {SourceIP: true, QueryParameter: "q"}} {
		_, err := NewHasher([]HashPolicyConfig{{Header: "ok"}, p})
		if err == nil || !strings.Contains(err.Error(), "router: hash_policy[1]: exactly one of") {
			t.Errorf("NewHasher(%+v) error = %v, want a hash_policy[1] error", p, err)
		}
	}
}

func TestHasherAllocatesNothing(t *testing.T) {
	h, err := NewHasher([]HashPolicyConfig{{Header: "x-tag"}, {Cookie: "sid"}, {SourceIP: true}, {QueryParameter: "user id"}})
	if err != nil {
		t.Fatal(err)
	}
	req := request("/p?a=1&user%20id=b%C3%B6b", "x-tag: b", "x-tag: a", "cookie: a=1; sid=xyz")
	client := netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(1000, func() { h.Hash(req, client) }); n != 0 {
		t.Errorf("Hash allocates %v times per call, want 0", n)
	}
}

func BenchmarkHasher(b *testing.B) {
	client := netip.MustParseAddr("192.0.2.7")
	for _, tc := range []struct {
		name     string
		policies []HashPolicyConfig
		req      *httpfilter.RequestHeaders
	}{
		{"header", []HashPolicyConfig{{Header: "x-user"}}, request("/", "accept: */*", "user-agent: bench", "x-user: alice")},
		{"cookie", []HashPolicyConfig{{Cookie: "sid"}}, request("/", "cookie: theme=dark; lang=en; sid=3f2a9c1e-77b0-4d1e")},
		{"source_ip", []HashPolicyConfig{{SourceIP: true}}, request("/")},
		{"query_parameter", []HashPolicyConfig{{QueryParameter: "user"}}, request("/search?q=go&page=2&user=bob")},
		{"all four", []HashPolicyConfig{{Header: "x-user"}, {Cookie: "sid"}, {SourceIP: true}, {QueryParameter: "user"}},
			request("/search?q=go&user=bob", "x-user: alice", "cookie: theme=dark; sid=3f2a")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, err := NewHasher(tc.policies)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				h.Hash(tc.req, client)
			}
		})
	}
}
