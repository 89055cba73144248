package rbac

import (
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// stubConn carries Info and records Close; the filter uses nothing else.
type stubConn struct {
	netfilter.Conn
	info   netfilter.Info
	closed atomic.Bool
}

func (c *stubConn) Info() *netfilter.Info { return &c.info }
func (c *stubConn) Close() error          { c.closed.Store(true); return nil }

type callbacks struct{ c *stubConn }

func (cb callbacks) Conn() netfilter.Conn { return cb.c }
func (cb callbacks) ContinueReading()     {}

func info(src, dst, sni string) *netfilter.Info {
	return &netfilter.Info{RemoteAddr: netip.MustParseAddrPort(src), LocalAddr: netip.MustParseAddrPort(dst), ServerName: sni}
}

func mustBuild(t *testing.T, c *Config) *Factory {
	t.Helper()
	f, err := c.Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Factory)
}

func TestConfigBuildRejectsInvalidTables(t *testing.T) {
	cases := []struct {
		name, key, want string
		cfg             Config
	}{
		{"bad action", "action", "must be", Config{Action: "LOG"}},
		{"no name", "policy[0].name", "required", Config{Policies: []Policy{{Any: true}}}},
		{"duplicate", "policy[1].name", "duplicate", Config{Policies: []Policy{{Name: "a", Any: true}, {Name: "a", Any: true}}}},
		{"empty policy", "policy[0].any", "no criterion", Config{Policies: []Policy{{Name: "a"}}}},
		{"any and more", "policy[0].any", "excludes", Config{Policies: []Policy{{Name: "a", Any: true, DestinationPorts: []int{80}}}}},
		{"bad cidr", "policy[0].source_ips", "invalid address", Config{Policies: []Policy{{Name: "a", SourceIPs: []string{"10.0.0.0/33"}}}}},
		{"bad ip", "policy[0].destination_ips", "invalid address", Config{Policies: []Policy{{Name: "a", DestinationIPs: []string{"nope"}}}}},
		{"zone", "policy[0].source_ips", "zones", Config{Policies: []Policy{{Name: "a", SourceIPs: []string{"fe80::1%eth0"}}}}},
		{"bad port", "policy[0].destination_ports", "not in 1..65535", Config{Policies: []Policy{{Name: "a", DestinationPorts: []int{0}}}}},
		{"bad wildcard", "policy[0].server_names", "invalid server name", Config{Policies: []Policy{{Name: "a", ServerNames: []string{"a.*.com"}}}}},
		{"bare star", "policy[0].server_names", "invalid server name", Config{Policies: []Policy{{Name: "a", ServerNames: []string{"*"}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Build(&registry.BuildContext{})
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want key %s: %s", err, tc.key, tc.want)
			}
		})
	}
}

func TestDecideFirstMatchingPolicyWins(t *testing.T) {
	policies := []Policy{
		{Name: "office", SourceIPs: []string{"10.0.0.0/8", "192.0.2.7"}},
		{Name: "tls-site", DestinationIPs: []string{"203.0.113.0/24"}, DestinationPorts: []int{443}, ServerNames: []string{"*.example.com", "Exact.Test"}},
		{Name: "v6", SourceIPs: []string{"2001:db8::/32"}},
	}
	cases := []struct {
		name, src, dst, sni string
		policy              string
	}{
		{"source cidr", "10.1.2.3:5000", "198.51.100.1:80", "", "office"},
		{"source address", "192.0.2.7:5000", "198.51.100.1:80", "", "office"},
		{"v4-mapped source", "[::ffff:10.0.0.1]:5000", "198.51.100.1:80", "", "office"},
		{"office beats later policy", "10.0.0.1:5000", "203.0.113.9:443", "a.example.com", "office"},
		{"all criteria", "198.51.100.9:5000", "203.0.113.9:443", "a.example.com", "tls-site"},
		{"exact sni, case folded", "198.51.100.9:5000", "203.0.113.9:443", "exact.TEST", "tls-site"},
		{"wrong port", "198.51.100.9:5000", "203.0.113.9:8443", "a.example.com", ""},
		{"wrong destination", "198.51.100.9:5000", "203.0.114.9:443", "a.example.com", ""},
		{"wildcard needs a label", "198.51.100.9:5000", "203.0.113.9:443", "example.com", ""},
		{"no sni", "198.51.100.9:5000", "203.0.113.9:443", "", ""},
		{"v6", "[2001:db8::1]:5000", "[2001:db8::2]:80", "", "v6"},
	}
	allow := mustBuild(t, &Config{Policies: policies})
	deny := mustBuild(t, &Config{Action: Deny, Policies: policies})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := info(tc.src, tc.dst, tc.sni)
			ok, p := allow.Decide(in)
			if p != tc.policy || ok != (tc.policy != "") {
				t.Fatalf("ALLOW: allowed %v by %q, want policy %q", ok, p, tc.policy)
			}
			ok, p = deny.Decide(in)
			if p != tc.policy || ok != (tc.policy == "") {
				t.Fatalf("DENY: allowed %v by %q, want policy %q", ok, p, tc.policy)
			}
		})
	}
}

func TestAllowWithoutPoliciesDeniesEverything(t *testing.T) {
	f := mustBuild(t, &Config{})
	if ok, _ := f.Decide(info("10.0.0.1:1", "10.0.0.2:2", "")); ok {
		t.Fatal("allowed, want denied (Envoy: ALLOW with no policy matches nothing)")
	}
	f = mustBuild(t, &Config{Action: Deny})
	if ok, _ := f.Decide(info("10.0.0.1:1", "10.0.0.2:2", "")); !ok {
		t.Fatal("denied, want allowed by DENY with no policy")
	}
}

func TestFilterClosesDeniedConnectionsAndCounts(t *testing.T) {
	f := mustBuild(t, &Config{Action: Deny, Policies: []Policy{{Name: "bad", SourceIPs: []string{"127.0.0.2"}}}})
	run := func(src string) (*stubConn, netfilter.Status) {
		c := &stubConn{info: *info(src, "127.0.0.1:80", "")}
		return c, f.NewFilter(callbacks{c}).(netfilter.ReadFilter).OnNewConnection()
	}
	if c, s := run("127.0.0.1:9"); s != netfilter.Continue || c.closed.Load() {
		t.Fatalf("allowed source: status %v, closed %v; want Continue, open", s, c.closed.Load())
	}
	if c, s := run("127.0.0.2:9"); s != netfilter.StopIteration || !c.closed.Load() {
		t.Fatalf("denied source: status %v, closed %v; want StopIteration, closed", s, c.closed.Load())
	}
	if a, d := f.Stats().Allowed.Value(), f.Stats().Denied.Value(); a != 1 || d != 1 {
		t.Fatalf("allowed %d, denied %d; want 1, 1", a, d)
	}
}

func TestShadowModeCountsButLetsEverythingThrough(t *testing.T) {
	f := mustBuild(t, &Config{Shadow: true, Policies: []Policy{{Name: "ok", SourceIPs: []string{"127.0.0.1"}}}})
	for _, src := range []string{"127.0.0.1:9", "127.0.0.2:9"} {
		c := &stubConn{info: *info(src, "127.0.0.1:80", "")}
		if s := f.NewFilter(callbacks{c}).(netfilter.ReadFilter).OnNewConnection(); s != netfilter.Continue || c.closed.Load() {
			t.Fatalf("%s: status %v, closed %v; want Continue, open", src, s, c.closed.Load())
		}
	}
	st := f.Stats()
	if st.ShadowAllowed.Value() != 1 || st.ShadowDenied.Value() != 1 || st.Allowed.Value() != 0 || st.Denied.Value() != 0 {
		t.Fatalf("shadow allowed %d denied %d, allowed %d denied %d; want 1 1 0 0", st.ShadowAllowed.Value(), st.ShadowDenied.Value(), st.Allowed.Value(), st.Denied.Value())
	}
}
