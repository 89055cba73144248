// Package csrf is the HTTP filter sluice.filters.http.csrf: Envoy's CSRF
// filter. It rejects state-changing requests (POST, PUT, DELETE, PATCH)
// whose source origin (Origin, else Referer) is neither the request's own
// target origin (its Host) nor one of the policy's additional origins, with
// 403 "Invalid origin". A shadow policy counts what it would reject and
// lets it through. See README.md.
package csrf

import (
	"fmt"

	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.csrf"

func init() {
	registry.Register(registry.Info{
		Name:        Name,
		Kind:        registry.HTTP,
		New:         func() registry.Config { return &Config{} },
		NewPerRoute: func() registry.PerRouteConfig { return &Config{} },
	})
}

// Config is the filter's TOML table, Envoy's CsrfPolicy; a
// typed_per_filter_config table for the filter has the same keys and
// replaces the filter's policy on its routes.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.csrf"
//	[listener.filter_chain.filter.config.http_filter.config]
//	filter_enabled = 100
//	shadow_enabled = 0
//	additional_origins = [{ suffix = ".example.com" }]
type Config struct {
	// FilterEnabled is the percentage (0 … 100) of requests the policy is
	// enforced on: a request that fails it gets 403. Default 100. Envoy's
	// filter_enabled, a runtime fractional percent, as a plain percentage.
	FilterEnabled *int `toml:"filter_enabled"`
	// ShadowEnabled is the percentage (0 … 100) of requests the policy is
	// evaluated on without being enforced (counted only). Default 0.
	ShadowEnabled *int `toml:"shadow_enabled"`
	// AdditionalOrigins are source origins accepted besides the target
	// origin, matched against the source origin's host[:port].
	AdditionalOrigins []rbacmatch.StringMatcher `toml:"additional_origins"`
}

// statNames are Envoy's CSRF counters under http.<stat_prefix>.csrf..
var statNames = []string{"missing_source_origin", "request_invalid", "request_valid"}

// StatDefs implements stats.FilterStats.
func (c *Config) StatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: scope + "csrf." + n, Kind: stats.KindCounter}
	}
	return defs
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	p, err := c.compile()
	if err != nil {
		return nil, err
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	return &Factory{policy: p,
		missing: slab.Counter(ctx.StatScope + "csrf.missing_source_origin"),
		invalid: slab.Counter(ctx.StatScope + "csrf.request_invalid"),
		valid:   slab.Counter(ctx.StatScope + "csrf.request_valid")}, nil
}

// Validate implements registry.PerRouteConfig.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// BuildPerRoute implements registry.PerRouteConfig: the policy replaces
// the filter's on its routes, as Envoy's per-route CsrfPolicy does (no
// merging); the counters stay the filter's.
func (c *Config) BuildPerRoute(*registry.BuildContext) (any, error) {
	return c.compile()
}

// compile checks c and returns its policy.
func (c *Config) compile() (*policy, error) {
	p := &policy{enabled: 100}
	for _, pc := range []struct {
		key string
		v   *int
		to  *int
	}{{"filter_enabled", c.FilterEnabled, &p.enabled}, {"shadow_enabled", c.ShadowEnabled, &p.shadow}} {
		if pc.v == nil {
			continue
		}
		if *pc.v < 0 || *pc.v > 100 {
			return nil, registry.Errorf(pc.key, "must be a percentage, 0 … 100, not %d", *pc.v)
		}
		*pc.to = *pc.v
	}
	for i := range c.AdditionalOrigins {
		m, err := c.AdditionalOrigins[i].Compile()
		if err != nil {
			return nil, registry.Errorf(fmt.Sprintf("additional_origins[%d]", i), "%v", err)
		}
		p.origins = append(p.origins, m)
	}
	return p, nil
}
