package router

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

func testTable(t testing.TB) *Table {
	t.Helper()
	cfg := &config.Config{Clusters: []config.Cluster{{Name: "c", Endpoints: []string{"127.0.0.1:1"}, LBPolicy: "round_robin"}}}
	m, err := cluster.NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	present := true
	rc := &config.RouteConfig{Name: "r", VirtualHosts: []config.VirtualHost{
		{Name: "exact", Domains: []string{"api.example.com"}, Routes: []config.Route{
			{Name: "exact-path", Match: config.RouteMatch{Path: "/a"}, Cluster: "c"},
			{Name: "hdr", Match: config.RouteMatch{Prefix: "/", Headers: []config.HeaderMatcher{{Name: "x-v", Exact: "2"}}}, Cluster: "c"},
			{Name: "method", Match: config.RouteMatch{Prefix: "/m/", Headers: []config.HeaderMatcher{{Name: ":method", Exact: "POST"}}}, Cluster: "c"},
			{Name: "present", Match: config.RouteMatch{Prefix: "/", Headers: []config.HeaderMatcher{{Name: "x-p", Present: &present}}}, Cluster: "c"},
			{Name: "regex", Match: config.RouteMatch{Regex: "/r/[0-9]+"}, Cluster: "c"},
			{Name: "prefix", Match: config.RouteMatch{Prefix: "/p/"}, Cluster: "c"},
		}},
		{Name: "suffix", Domains: []string{"*.example.com"}, Routes: []config.Route{{Name: "suffix", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"}}},
		{Name: "longsuffix", Domains: []string{"*.b.example.com"}, Routes: []config.Route{{Name: "longsuffix", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"}}},
		{Name: "prefixdom", Domains: []string{"www.*"}, Routes: []config.Route{{Name: "prefixdom", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"}}},
		{Name: "any", Domains: []string{"*"}, Routes: []config.Route{{Name: "any", Match: config.RouteMatch{Prefix: "/only/"}, Cluster: "c"}}},
	}}
	tbl, err := NewTable(rc, m)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func req(authority, path string, hdrs ...string) *httpfilter.RequestHeaders {
	h := &httpfilter.RequestHeaders{Method: []byte("GET"), Authority: []byte(authority), Path: []byte(path)}
	for i := 0; i+1 < len(hdrs); i += 2 {
		h.Add(hdrs[i], hdrs[i+1])
	}
	return h
}

func TestTableMatchPicksVirtualHostAndFirstMatchingRoute(t *testing.T) {
	tbl := testTable(t)
	for _, tc := range []struct {
		name string
		h    *httpfilter.RequestHeaders
		want string // route name, "" for no route
	}{
		{"exact path", req("api.example.com", "/a?x=1"), "exact-path"},
		{"exact path is exact", req("api.example.com", "/ab"), ""},
		{"authority is case-insensitive and port is ignored", req("API.Example.com:8080", "/a"), "exact-path"},
		{"header exact", req("api.example.com", "/z", "x-v", "2"), "hdr"},
		{"header exact mismatch", req("api.example.com", "/z", "x-v", "3"), ""},
		{"header present", req("api.example.com", "/z", "x-p", ""), "present"},
		{"pseudo-header :method", func() *httpfilter.RequestHeaders {
			h := req("api.example.com", "/m/x")
			h.Method = []byte("POST")
			return h
		}(), "method"},
		{"pseudo-header :method mismatch", req("api.example.com", "/m/x"), ""},
		{"regex matches whole path", req("api.example.com", "/r/123"), "regex"},
		{"regex is anchored", req("api.example.com", "/r/123/x"), ""},
		{"prefix", req("api.example.com", "/p/x"), "prefix"},
		{"suffix wildcard", req("a.example.com", "/"), "suffix"},
		{"longest suffix wins", req("x.b.example.com", "/"), "longsuffix"},
		{"prefix wildcard", req("www.other.org", "/"), "prefixdom"},
		{"catch-all", req("other.org", "/only/x"), "any"},
		{"no route in catch-all", req("other.org", "/"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tbl.Match(tc.h)
			got := ""
			if r != nil {
				got = r.Name()
			}
			if got != tc.want {
				t.Fatalf("route = %q, want %q", got, tc.want)
			}
		})
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	tbl := testTable(b)
	h := req("api.example.com", "/p/some/path?q=1", "user-agent", "bench", "accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		if tbl.Match(h) == nil {
			b.Fatal("no match")
		}
	}
}
