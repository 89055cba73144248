package router

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
)

func TestQueryParameterAndCaseInsensitiveMatching(t *testing.T) {
	cfg := &config.Config{Clusters: []config.Cluster{{Name: "c", Endpoints: []string{"127.0.0.1:1"}, LBPolicy: "round_robin"}}}
	m, err := cluster.NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	q := func(qs ...config.QueryParameterMatcher) config.RouteMatch {
		return config.RouteMatch{Prefix: "/q/", QueryParameters: qs}
	}
	rc := &config.RouteConfig{Name: "r", VirtualHosts: []config.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []config.Route{
		{Name: "exact", Match: q(config.QueryParameterMatcher{Name: "v", Exact: "a%20b"}), Cluster: "c"},
		{Name: "prefix-fold", Match: q(config.QueryParameterMatcher{Name: "p", Prefix: "ab", IgnoreCase: true}), Cluster: "c"},
		{Name: "suffix", Match: q(config.QueryParameterMatcher{Name: "s", Suffix: "yz"}), Cluster: "c"},
		{Name: "contains", Match: q(config.QueryParameterMatcher{Name: "c", Contains: "mid"}), Cluster: "c"},
		{Name: "regex", Match: q(config.QueryParameterMatcher{Name: "r", Regex: "[0-9]+"}), Cluster: "c"},
		{Name: "absent", Match: q(config.QueryParameterMatcher{Name: "x", Present: &no}, config.QueryParameterMatcher{Name: "debug"}), Cluster: "c"},
		{Name: "present", Match: q(config.QueryParameterMatcher{Name: "debug", Present: &yes}), Cluster: "c"},
		{Name: "fold-prefix", Match: config.RouteMatch{Prefix: "/CI/", CaseSensitive: &no}, Cluster: "c"},
		{Name: "fold-path", Match: config.RouteMatch{Path: "/Exact", CaseSensitive: &no}, Cluster: "c"},
		{Name: "case-sensitive", Match: config.RouteMatch{Prefix: "/cs/", CaseSensitive: &yes}, Cluster: "c"},
	}}}}
	tbl, err := NewTable(rc, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/q/?v=a%20b", "exact"},
		{"/q/?v=a+b", ""}, // not decoded, as in Envoy
		{"/q/?v=x&v=a%20b", ""},
		{"/q/?p=ABC", "prefix-fold"},
		{"/q/?s=xyz", "suffix"},
		{"/q/?c=amidst", "contains"},
		{"/q/?r=123", "regex"},
		{"/q/?r=12a", ""},
		{"/q/?debug", "absent"},
		{"/q/?debug&x=1", "present"},
		{"/q/?debug=&x", "present"},
		{"/q/", ""},
		{"/ci/x", "fold-prefix"},
		{"/cI/x?y=1", "fold-prefix"},
		{"/EXACT", "fold-path"},
		{"/exact/", ""},
		{"/cs/x", "case-sensitive"},
		{"/CS/x", ""},
	} {
		r := tbl.Match(req("h", tc.path))
		got := ""
		if r != nil {
			got = r.Name()
		}
		if got != tc.want {
			t.Errorf("%s: route %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestRE2Substitution(t *testing.T) {
	for _, tc := range []struct {
		sub, want, err string
		groups         int
	}{
		{sub: `\2/instance/\1`, groups: 2, want: `${2}/instance/${1}`},
		{sub: `a$b\\c\0`, groups: 0, want: `a$$b\c${0}`},
		{sub: `\3`, groups: 2, err: "capture group"},
		{sub: `\n`, groups: 2, err: "invalid escape"},
		{sub: `x\`, groups: 2, err: "lone"},
	} {
		got, err := config.RE2Substitution(tc.sub, tc.groups)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one naming %q", tc.sub, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.sub, got, err, tc.want)
		}
	}
}
