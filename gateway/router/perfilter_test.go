package router

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// namedPerRoute is a per-route config whose built value is its name.
type namedPerRoute struct{ v string }

func (p *namedPerRoute) Validate() error { return nil }

func (p *namedPerRoute) BuildPerRoute(*registry.BuildContext) (any, error) { return &p.v, nil }

func perFilter(pairs ...string) config.PerFilterConfigs {
	var pf config.PerFilterConfigs
	for i := 0; i+1 < len(pairs); i += 2 {
		pf.PerFilter = append(pf.PerFilter, config.PerFilterConfig{Name: pairs[i], Config: &namedPerRoute{pairs[i+1]}})
	}
	return pf
}

func TestPerFilterConfigPrecedence(t *testing.T) {
	cfg := &config.Config{Clusters: []config.Cluster{{Name: "c", Endpoints: []string{"127.0.0.1:1"}, LBPolicy: "round_robin"}}}
	m, err := cluster.NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	const a, b, c = "sluice.filters.http.a", "sluice.filters.http.b", "sluice.filters.http.c"
	rc := &config.RouteConfig{Name: "r", PerFilterConfigs: perFilter(a, "table-a", b, "table-b", c, "table-c"),
		VirtualHosts: []config.VirtualHost{
			{Name: "vh", Domains: []string{"vh"}, PerFilterConfigs: perFilter(a, "vh-a", b, "vh-b"), Routes: []config.Route{
				{Name: "own", Match: config.RouteMatch{Path: "/own"}, Cluster: "c", PerFilterConfigs: perFilter(a, "route-a")},
				{Name: "inherits", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"},
			}},
			{Name: "plain", Domains: []string{"plain"}, Routes: []config.Route{
				{Name: "plain", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"},
			}},
		}}
	builds := 0
	tbl, err := NewTableWith(rc, m, func(pf *config.PerFilterConfig) (any, error) {
		builds++
		return pf.Config.BuildPerRoute(&registry.BuildContext{Path: pf.Path})
	})
	if err != nil {
		t.Fatal(err)
	}
	if builds != 6 {
		t.Errorf("%d per-filter builds, want 6: one per table", builds)
	}
	get := func(authority, path, filter string) string {
		r := tbl.Match(req(authority, path))
		if r == nil {
			t.Fatalf("%s%s: no route", authority, path)
		}
		v := r.PerFilterConfig(filter)
		if v == nil {
			return ""
		}
		return *v.(*string)
	}
	for _, tc := range []struct{ authority, path, filter, want string }{
		{"vh", "/own", a, "route-a"},
		{"vh", "/own", b, "vh-b"},
		{"vh", "/own", c, "table-c"},
		{"vh", "/other", a, "vh-a"},
		{"vh", "/other", b, "vh-b"},
		{"vh", "/other", c, "table-c"},
		{"plain", "/", a, "table-a"},
		{"plain", "/", "sluice.filters.http.none", ""},
	} {
		if got := get(tc.authority, tc.path, tc.filter); got != tc.want {
			t.Errorf("%s%s %s: %q, want %q", tc.authority, tc.path, tc.filter, got, tc.want)
		}
	}
	// A virtual host's value is built once and shared by its routes.
	r1, r2 := tbl.Match(req("vh", "/own")), tbl.Match(req("vh", "/other"))
	if r1.PerFilterConfig(b) != r2.PerFilterConfig(b) {
		t.Error("the virtual host's value differs between its routes")
	}
	if n := testing.AllocsPerRun(100, func() { _ = r1.PerFilterConfig(c) }); n != 0 {
		t.Errorf("PerFilterConfig allocates %v times", n)
	}
}

// A route table without per-filter config gives routes none: the lookup is
// a length check.
func TestPerFilterConfigAbsent(t *testing.T) {
	r := testTable(t).Match(req("api.example.com", "/a"))
	if r == nil {
		t.Fatal("no route")
	}
	if v := r.PerFilterConfig("sluice.filters.http.cors"); v != nil {
		t.Errorf("PerFilterConfig = %v, want nil", v)
	}
	if rt := r.(*Route); rt.perFilter != nil {
		t.Errorf("perFilter = %v, want nil", rt.perFilter)
	}
}

func BenchmarkPerFilterConfig(b *testing.B) {
	r := testTable(b).Match(req("api.example.com", "/a"))
	b.ReportAllocs()
	for b.Loop() {
		if r.PerFilterConfig("sluice.filters.http.cors") != nil {
			b.Fatal("config")
		}
	}
}

// joinedPerRoute's built values join with the less specific levels'
// (registry.PerRouteMerger).
type joinedPerRoute struct{ v string }

func (p *joinedPerRoute) Validate() error { return nil }

func (p *joinedPerRoute) BuildPerRoute(*registry.BuildContext) (any, error) { return joined(p.v), nil }

type joined string

func (j joined) MergePerRoute(less any) any { return joined(string(less.(joined)) + "+" + string(j)) }

// A value that is a registry.PerRouteMerger combines with the less
// specific levels' (table, then virtual host, then route), once per route
// at build time; one that is not replaces them.
func TestPerFilterConfigMerge(t *testing.T) {
	cfg := &config.Config{Clusters: []config.Cluster{{Name: "c", Endpoints: []string{"127.0.0.1:1"}, LBPolicy: "round_robin"}}}
	m, err := cluster.NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	const j, n = "sluice.filters.http.joined", "sluice.filters.http.named"
	pf := func(v string) config.PerFilterConfigs {
		p := perFilter(n, v)
		p.PerFilter = append(p.PerFilter, config.PerFilterConfig{Name: j, Config: &joinedPerRoute{v}})
		return p
	}
	rc := &config.RouteConfig{Name: "r", PerFilterConfigs: pf("table"),
		VirtualHosts: []config.VirtualHost{
			{Name: "vh", Domains: []string{"vh"}, PerFilterConfigs: pf("vh"), Routes: []config.Route{
				{Name: "own", Match: config.RouteMatch{Path: "/own"}, Cluster: "c", PerFilterConfigs: pf("route")},
				{Name: "inherits", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"},
			}},
			{Name: "plain", Domains: []string{"plain"}, Routes: []config.Route{
				{Name: "plain", Match: config.RouteMatch{Prefix: "/"}, Cluster: "c"},
			}},
		}}
	tbl, err := NewTable(rc, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ authority, path, joined, named string }{
		{"vh", "/own", "table+vh+route", "route"},
		{"vh", "/other", "table+vh", "vh"},
		{"plain", "/", "table", "table"},
	} {
		r := tbl.Match(req(tc.authority, tc.path))
		if r == nil {
			t.Fatalf("%s%s: no route", tc.authority, tc.path)
		}
		if got := r.PerFilterConfig(j); got != joined(tc.joined) {
			t.Errorf("%s%s: merged %v, want %q", tc.authority, tc.path, got, tc.joined)
		}
		if got := *r.PerFilterConfig(n).(*string); got != tc.named {
			t.Errorf("%s%s: %q, want %q (the most specific)", tc.authority, tc.path, got, tc.named)
		}
	}
}
