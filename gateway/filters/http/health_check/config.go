// Package healthcheck is the HTTP filter sluice.filters.http.health_check:
// Envoy's health_check filter. It answers the health checks of a load
// balancer in front of sluice on a configured path, locally (200, or 503
// once the admin /healthcheck/fail was called) or, in pass-through mode, by
// letting the request through to the router. See README.md.
//
// The fail/ok state is a word in the shared stats region, the gauge
// server.health_check_failed: the supervisor sets it in every worker's slab
// and the filter reads its own slab with one atomic load, so the state
// reaches every worker and every generation at once, with no message.
package healthcheck

import (
	"strings"

	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.health_check"

// FailedGauge is the gauge that holds the health check state in each
// worker's slab: non-zero after /healthcheck/fail, zero after
// /healthcheck/ok. The supervisor writes it; the filter only reads it.
const FailedGauge = "server.health_check_failed"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.HTTP,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.health_check"
//	[listener.filter_chain.filter.config.http_filter.config]
//	path = "/healthz"
//	pass_through_mode = false
type Config struct {
	// Path is the request path (without query) that is a health check.
	// Required; it must start with '/'.
	Path string `toml:"path"`
	// PassThroughMode, when true, passes health checks to the next filter
	// (usually the router) instead of answering them, except that a failed
	// state still answers 503 locally. Default false: sluice answers 200
	// itself.
	PassThroughMode bool `toml:"pass_through_mode"`
}

// StatDefs implements stats.FilterStats: the filter's state word.
func (c *Config) StatDefs(string) []stats.Def {
	return []stats.Def{{Name: FailedGauge, Kind: stats.KindGauge}}
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	if c.Path == "" {
		return nil, registry.Errorf("path", "required")
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, "?# \t") {
		return nil, registry.Errorf("path", "must be an absolute path without query, not %q", c.Path)
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	f := &Factory{
		path:        c.Path,
		passThrough: c.PassThroughMode,
		failed:      slab.Gauge(FailedGauge),
	}
	return f, nil
}
