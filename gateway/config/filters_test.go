package config

import (
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Test-only filters, registered once for every test of the package.

// testListenerCfg is the config of sluice.filters.listener.test_cfg.
type testListenerCfg struct {
	Timeout Duration `toml:"timeout"`
	SNI     bool     `toml:"sni"`
}

func (*testListenerCfg) Build(*registry.BuildContext) (any, error) { return nil, nil }

// testHCMCfg is the config of sluice.filters.network.test_hcm, a terminal
// network filter with a nested HTTP filter chain.
type testHCMCfg struct {
	StatPrefix  string   `toml:"stat_prefix"`
	RouteConfig string   `toml:"route_config"`
	HTTPFilters []Filter `toml:"http_filter"`
}

func (*testHCMCfg) Build(*registry.BuildContext) (any, error) { return nil, nil }

func (c *testHCMCfg) Nested() (registry.Kind, string, []Filter) {
	return registry.HTTP, "http_filter", c.HTTPFilters
}

// testNetCfg is the config of sluice.filters.network.test_cfg.
type testNetCfg struct {
	StatPrefix string `toml:"stat_prefix"`
	Limit      int    `toml:"limit"`
}

func (*testNetCfg) Build(*registry.BuildContext) (any, error) { return nil, nil }

// testHTTPCfg is the config of sluice.filters.http.test_cfg; New sets
// Header to "x-default".
type testHTTPCfg struct {
	Header string            `toml:"header"`
	Small  int8              `toml:"small"`
	Tags   []string          `toml:"tags"`
	Limits map[string]int    `toml:"limits"`
	Retry  struct{ Max int } `toml:"retry"`
	Extra  map[string]any    `toml:"extra"`
}

func (*testHTTPCfg) Build(*registry.BuildContext) (any, error) { return nil, nil }

// testRouterCfg is the config of sluice.filters.http.test_router (no keys).
type testRouterCfg struct{}

func (*testRouterCfg) Build(*registry.BuildContext) (any, error) { return nil, nil }

func init() {
	registry.Register(registry.Info{
		Name: "sluice.filters.listener.test_cfg", Kind: registry.Listener,
		New: func() registry.Config { return new(testListenerCfg) },
	})
	// Stand-ins for the inspectors, whose names chain matching on SNI, TLS
	// or ALPN needs on its listener.
	registry.Register(registry.Info{
		Name: tlsInspector, Kind: registry.Listener,
		New: func() registry.Config { return new(testListenerCfg) },
	})
	registry.Register(registry.Info{
		Name: httpInspector, Kind: registry.Listener,
		New: func() registry.Config { return new(testListenerCfg) },
	})
	registry.Register(registry.Info{
		Name: "sluice.filters.network.test_hcm", Kind: registry.Network, Terminal: true,
		New: func() registry.Config { return new(testHCMCfg) },
	})
	registry.Register(registry.Info{
		Name: "sluice.filters.network.test_cfg", Kind: registry.Network,
		New: func() registry.Config { return new(testNetCfg) },
	})
	registry.Register(registry.Info{
		Name: "sluice.filters.http.test_cfg", Kind: registry.HTTP,
		New: func() registry.Config { return &testHTTPCfg{Header: "x-default"} },
	})
	registry.Register(registry.Info{
		Name: "sluice.filters.http.test_router", Kind: registry.HTTP, Terminal: true,
		New: func() registry.Config { return new(testRouterCfg) },
	})
}
