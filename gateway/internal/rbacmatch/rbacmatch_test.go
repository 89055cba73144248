package rbacmatch

import (
	"net/netip"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

func str(s string) *string { return &s }

func TestMatcherKinds(t *testing.T) {
	for _, tc := range []struct {
		m    StringMatcher
		v    string
		want bool
	}{
		{StringMatcher{Exact: str("")}, "", true},
		{StringMatcher{Exact: str("a")}, "A", false},
		{StringMatcher{Exact: str("a"), IgnoreCase: true}, "A", true},
		{StringMatcher{Prefix: "/Ab", IgnoreCase: true}, "/aBc", true},
		{StringMatcher{Prefix: "/ab"}, "/a", false},
		{StringMatcher{Suffix: ".COM", IgnoreCase: true}, "x.com", true},
		{StringMatcher{Contains: "mid"}, "amidb", true},
		{StringMatcher{Contains: "MID", IgnoreCase: true}, "amidb", true},
		{StringMatcher{Contains: "MID", IgnoreCase: true}, "amib", false},
		{StringMatcher{Regex: "a|b"}, "ab", false},
		{StringMatcher{Regex: "a|b"}, "b", true},
	} {
		m, err := tc.m.Compile()
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match([]byte(tc.v)); got != tc.want || m.MatchString(tc.v) != tc.want {
			t.Errorf("%+v on %q: %v, want %v", tc.m, tc.v, got, tc.want)
		}
	}
	for _, bad := range []StringMatcher{{}, {Prefix: "a", Suffix: "b"}, {Regex: "("}, {Regex: "a", IgnoreCase: true}} {
		if _, err := bad.Compile(); err == nil {
			t.Errorf("%+v compiled", bad)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	ms := []StringMatcher{{Exact: str("x"), IgnoreCase: true}, {Contains: "zz", IgnoreCase: true}, {Regex: "/u/[0-9]+"}}
	v := []byte("/u/12345")
	for _, sm := range ms {
		m, _ := sm.Compile()
		if n := testing.AllocsPerRun(100, func() { m.Match(v) }); n != 0 {
			t.Errorf("%+v: %v allocations", sm, n)
		}
	}
}

func TestIPsAndPorts(t *testing.T) {
	ips, err := ParseIPs([]string{"10.0.0.0/8", "2001:db8::1", "192.0.2.7/24"})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"10.9.9.9": true, "::ffff:10.1.1.1": true, "2001:db8::1": true, "2001:db8::2": false, "192.0.2.200": true, "11.0.0.1": false} {
		if ips.Contains(netip.MustParseAddr(a)) != want {
			t.Errorf("%s: want %v", a, want)
		}
	}
	// IPv4-mapped ranges match the IPv4 clients they map, whichever form
	// the peer address has.
	mapped, err := ParseIPs([]string{"::ffff:192.0.2.0/120", "::ffff:198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"192.0.2.9": true, "::ffff:192.0.2.9": true, "198.51.100.7": true,
		"::ffff:198.51.100.7": true, "198.51.100.8": false, "192.0.3.1": false, "::1": false} {
		if mapped.Contains(netip.MustParseAddr(a)) != want {
			t.Errorf("mapped ranges, %s: want %v", a, want)
		}
	}
	if _, err := ParsePorts([]int{0}); err == nil {
		t.Error("port 0 accepted")
	}
	if p, _ := ParsePorts([]int{80, 443}); !p.Contains(443) || p.Contains(8080) {
		t.Error("ports")
	}
}

// TestStatDefsExportOneFamilyPerCounter: whatever the prefixes, a counter
// is one Prometheus family, the prefixes labels.
func TestStatDefsExportOneFamilyPerCounter(t *testing.T) {
	h := StatDefs("http.ingress.", "edge.")
	if h[1].Name != "http.ingress.edge.rbac.denied" || h[1].Family != "http_rbac_denied" ||
		len(h[1].Labels) != 2 || h[1].Labels[0] != (stats.Label{Name: "http_conn_manager_prefix", Value: "ingress"}) ||
		h[1].Labels[1] != (stats.Label{Name: "rbac_prefix", Value: "edge"}) {
		t.Errorf("http: %+v", h[1])
	}
	n := StatDefs("", "")
	if n[0].Name != "rbac.allowed" || n[0].Family != "rbac_allowed" || len(n[0].Labels) != 0 {
		t.Errorf("network: %+v", n[0])
	}
	var s Stats = NewStats(nil, "", "")
	if !s.Count(false, false) || s.Count(true, false) || s.Count(false, true) || s.Denied.Value() != 1 || s.ShadowDenied.Value() != 1 || s.Allowed.Value() != 1 {
		t.Error("Count")
	}
}
