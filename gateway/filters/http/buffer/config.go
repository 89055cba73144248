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
		Name: Name,
		Kind: registry.HTTP,
		New:  func() registry.Config { return &Config{} },
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
