package config

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

// testPerRouteCfg is the per-route config of
// sluice.filters.http.test_per_route; Validate refuses a negative limit.
type testPerRouteCfg struct {
	Limit int               `toml:"limit"`
	Tags  map[string]string `toml:"tags"`
}

func (c *testPerRouteCfg) Validate() error {
	if c.Limit < 0 {
		return registry.Errorf("limit", "must be >= 0")
	}
	return nil
}

func (c *testPerRouteCfg) BuildPerRoute(*registry.BuildContext) (any, error) { return c, nil }

func init() {
	registry.Register(registry.Info{
		Name: "sluice.filters.http.test_per_route", Kind: registry.HTTP,
		New:         func() registry.Config { return new(testRouterCfg) },
		NewPerRoute: func() registry.PerRouteConfig { return new(testPerRouteCfg) },
	})
}

// perRouteTOML is baseTOML with per-filter tables on the route table (line
// 21), the virtual host (line 27) and the route (line 32).
const perRouteTOML = listenerTOML + clusterTOML + `[[route_config]]
name = "main"
[route_config.typed_per_filter_config."sluice.filters.http.test_per_route"]
limit = 1
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[route_config.virtual_host.typed_per_filter_config."sluice.filters.http.test_per_route"]
limit = 2
tags = { a = "b" }
[[route_config.virtual_host.route]]
match = { prefix = "/" }
cluster = "backend"
[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.test_per_route"]
limit = 3
`

func TestPerFilterConfigIsDecodedOnEveryLevel(t *testing.T) {
	c := parse(t, perRouteTOML)
	rc := &c.RouteConfigs[0]
	vh := &rc.VirtualHosts[0]
	for _, tc := range []struct {
		level string
		pf    []PerFilterConfig
		limit int
		path  string
	}{
		{"route table", rc.PerFilter, 1, `route_config[0].typed_per_filter_config."sluice.filters.http.test_per_route"`},
		{"virtual host", vh.PerFilter, 2, `route_config[0].virtual_host[0].typed_per_filter_config."sluice.filters.http.test_per_route"`},
		{"route", vh.Routes[0].PerFilter, 3, `route_config[0].virtual_host[0].route[0].typed_per_filter_config."sluice.filters.http.test_per_route"`},
	} {
		if len(tc.pf) != 1 {
			t.Fatalf("%s: %d per-filter configs, want 1", tc.level, len(tc.pf))
		}
		got, ok := tc.pf[0].Config.(*testPerRouteCfg)
		if !ok || got.Limit != tc.limit || tc.pf[0].Name != "sluice.filters.http.test_per_route" || tc.pf[0].Path != tc.path {
			t.Errorf("%s: got %+v (%T), want limit %d at %s", tc.level, tc.pf[0], tc.pf[0].Config, tc.limit, tc.path)
		}
	}
	if got := vh.PerFilter[0].Config.(*testPerRouteCfg).Tags["a"]; got != "b" {
		t.Errorf("virtual host tags: a = %q", got)
	}
	if l := c.Line(rc.PerFilter[0].Path + ".limit"); l != 22 {
		t.Errorf("line of the route table's limit: %d, want 22", l)
	}
	// /config_dump shows each table as its decoded config.
	b, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		RouteConfig []struct {
			TypedPerFilterConfig map[string]map[string]any `json:"typed_per_filter_config"`
		} `json:"route_config"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if got := d.RouteConfig[0].TypedPerFilterConfig["sluice.filters.http.test_per_route"]["limit"]; got != float64(1) {
		t.Errorf("dump: route table limit = %v, want 1 (%s)", got, b)
	}
}

func TestPerFilterConfigErrors(t *testing.T) {
	const routeKey = `route_config[0].virtual_host[0].route[0].typed_per_filter_config.`
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown filter", `."sluice.filters.http.test_per_route"]
limit = 3`, `."sluice.filters.http.nope"]
limit = 3`, `t.toml:32: ` + routeKey + `"sluice.filters.http.nope": unknown http filter "sluice.filters.http.nope"`},
		{"filter of another kind", `."sluice.filters.http.test_per_route"]
limit = 3`, `."sluice.filters.network.test_cfg"]
limit = 3`, `t.toml:32: ` + routeKey + `"sluice.filters.network.test_cfg": "sluice.filters.network.test_cfg" is a filter of kind network, not http`},
		{"filter without per-route settings", `."sluice.filters.http.test_per_route"]
limit = 3`, `."sluice.filters.http.test_cfg"]
header = "x"`, `t.toml:32: ` + routeKey + `"sluice.filters.http.test_cfg": filter "sluice.filters.http.test_cfg" has no per-route settings`},
		{"unknown key", "limit = 3\n", "limit = 3\nlimt = 4\n",
			`t.toml:34: ` + routeKey + `"sluice.filters.http.test_per_route".limt: unknown key`},
		{"wrong type", "limit = 3\n", "limit = \"3\"\n",
			`t.toml:33: ` + routeKey + `"sluice.filters.http.test_per_route".limit: expected integer, found string`},
		{"wrong type in a map, virtual host", `tags = { a = "b" }`, `tags = { a = 1 }`,
			`t.toml:28: route_config[0].virtual_host[0].typed_per_filter_config."sluice.filters.http.test_per_route".tags.a: expected string, found integer`},
		{"invalid value, route table", "limit = 1\n", "limit = -1\n",
			`t.toml:22: route_config[0].typed_per_filter_config."sluice.filters.http.test_per_route".limit: must be >= 0`},
		{"not a table", `[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.test_per_route"]
limit = 3`, `typed_per_filter_config = { "sluice.filters.http.test_per_route" = 3 }`,
			`t.toml:32: ` + routeKey + `"sluice.filters.http.test_per_route": expected table, found integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := perRouteTOML
			i := strings.LastIndex(text, tc.old)
			if i < 0 {
				t.Fatalf("%q not in the config", tc.old)
			}
			parseErr(t, text[:i]+tc.new+text[i+len(tc.old):], tc.want)
		})
	}
}
