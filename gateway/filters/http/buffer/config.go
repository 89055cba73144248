// Package buffer is the HTTP filter sluice.filters.http.buffer: Envoy's
// buffer filter. It holds each request's whole body, up to
// max_request_bytes, before the request goes on to the next filter (the
// router): a slow client's upload then never ties up an upstream
// connection, and a body that is too large gets 413 without reaching the
// upstream. See README.md.
package buffer

import (
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.buffer"

// maxRequestBytes bounds max_request_bytes: a body held whole lives in the
// worker's memory.
const maxRequestBytes = 1 << 30

func init() {
	registry.Register(registry.Info{
		Name:        Name,
		Kind:        registry.HTTP,
		New:         func() registry.Config { return &Config{} },
		NewPerRoute: func() registry.PerRouteConfig { return &PerRoute{} },
	})
}

// Config is the filter's TOML table.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.buffer"
//	[listener.filter_chain.filter.config.http_filter.config]
//	max_request_bytes = 1048576
type Config struct {
	// MaxRequestBytes is the largest request body held; a larger one gets
	// 413. Required, 1 … 1 GiB.
	MaxRequestBytes int64 `toml:"max_request_bytes"`
}

// Build implements registry.Config.
func (c *Config) Build(*registry.BuildContext) (any, error) {
	if c.MaxRequestBytes <= 0 || c.MaxRequestBytes > maxRequestBytes {
		return nil, registry.Errorf("max_request_bytes", "required, 1 … %d, not %d", maxRequestBytes, c.MaxRequestBytes)
	}
	return &Factory{max: int(c.MaxRequestBytes)}, nil
}

// PerRoute is the filter's typed_per_filter_config table on a route,
// virtual host or route table (Envoy's BufferPerRoute): exactly one of
// disabled = true (the route's requests are not held) and
// max_request_bytes (the route's own limit).
//
//	[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.buffer"]
//	max_request_bytes = 104857600
type PerRoute struct {
	// Disabled turns the filter off for the route.
	Disabled bool `toml:"disabled"`
	// MaxRequestBytes replaces the filter's max_request_bytes, 1 … 1 GiB.
	MaxRequestBytes int64 `toml:"max_request_bytes"`
}

// perRoute is a built PerRoute.
type perRoute struct {
	disabled bool
	max      int
}

// Validate implements registry.PerRouteConfig.
func (p *PerRoute) Validate() error {
	if p.Disabled == (p.MaxRequestBytes != 0) {
		return registry.Errorf("", "set exactly one of disabled = true and max_request_bytes")
	}
	if !p.Disabled && (p.MaxRequestBytes < 0 || p.MaxRequestBytes > maxRequestBytes) {
		return registry.Errorf("max_request_bytes", "must be 1 … %d, not %d", maxRequestBytes, p.MaxRequestBytes)
	}
	return nil
}

// BuildPerRoute implements registry.PerRouteConfig.
func (p *PerRoute) BuildPerRoute(*registry.BuildContext) (any, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &perRoute{disabled: p.Disabled, max: int(p.MaxRequestBytes)}, nil
}
