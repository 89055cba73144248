// Package cache is the HTTP filter sluice.filters.http.cache: Envoy's
// envoy.filters.http.cache with its in-memory storage (simple_http_cache),
// a shared HTTP cache by RFC 9111. Each worker process holds its own
// store, bounded by max_size_bytes with LRU eviction; responses stream to
// the client while they are stored. See README.md.
package cache

import (
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.cache"

// Defaults and bounds of the size keys.
const (
	DefaultMaxSizeBytes = 64 << 20
	DefaultMaxBodyBytes = 1 << 20
	maxSizeBytes        = 64 << 30
)

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
//	name = "sluice.filters.http.cache"
//	[listener.filter_chain.filter.config.http_filter.config]
//	max_size_bytes = 67108864
//	max_body_bytes = 1048576
//	allowed_vary_headers = ["accept-encoding"]
type Config struct {
	// MaxSizeBytes bounds what one worker process stores (header and body
	// bytes, plus a fixed overhead per entry); least recently used
	// entries are evicted past it. Default 64 MiB, at most 64 GiB.
	MaxSizeBytes int64 `toml:"max_size_bytes"`
	// MaxBodyBytes is the largest body stored; larger responses stream
	// through unstored. Default 1 MiB, at most max_size_bytes.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// AllowedVaryHeaders are the request header names a stored response
	// may vary on (Envoy's allowed_vary_headers, as exact names): a
	// response whose Vary names any other is not stored. Empty: responses
	// with Vary are not stored.
	AllowedVaryHeaders []string `toml:"allowed_vary_headers"`
}

// statNames are the filter's counters and gauges, under
// http.<stat_prefix>.cache.
var statNames = []struct {
	name string
	kind stats.Kind
}{
	{"hits", stats.KindCounter},
	{"misses", stats.KindCounter},
	{"bypass", stats.KindCounter},
	{"validations", stats.KindCounter},
	{"revalidated", stats.KindCounter},
	{"not_modified", stats.KindCounter},
	{"insertions", stats.KindCounter},
	{"evictions", stats.KindCounter},
	{"invalidations", stats.KindCounter},
	{"entries", stats.KindGauge},
	{"bytes", stats.KindGauge},
}

// StatDefs implements stats.FilterStats.
func (c *Config) StatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, s := range statNames {
		defs[i] = stats.Def{Name: scope + "cache." + s.name, Kind: s.kind}
	}
	return defs
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	size, body := c.MaxSizeBytes, c.MaxBodyBytes
	if size == 0 {
		size = DefaultMaxSizeBytes
	}
	if size < 0 || size > maxSizeBytes {
		return nil, registry.Errorf("max_size_bytes", "must be 1 … %d, not %d", int64(maxSizeBytes), size)
	}
	if body == 0 {
		body = min(DefaultMaxBodyBytes, size)
	}
	if body < 0 || body > size {
		return nil, registry.Errorf("max_body_bytes", "must be 1 … max_size_bytes (%d), not %d", size, body)
	}
	f := &Factory{maxBody: body}
	for i, h := range c.AllowedVaryHeaders {
		if h == "" || !isToken(h) {
			return nil, registry.Errorf(fmt.Sprintf("allowed_vary_headers[%d]", i), "%q is not a header name", h)
		}
		f.allowedVary = append(f.allowedVary, strings.ToLower(h))
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	scope := ctx.StatScope + "cache."
	f.st = filterStats{
		hits: slab.Counter(scope + "hits"), misses: slab.Counter(scope + "misses"),
		bypass: slab.Counter(scope + "bypass"), validations: slab.Counter(scope + "validations"),
		revalidated: slab.Counter(scope + "revalidated"), notModified: slab.Counter(scope + "not_modified"),
	}
	f.store = newStore(size, storeStats{
		insertions: slab.Counter(scope + "insertions"), evictions: slab.Counter(scope + "evictions"),
		invalidations: slab.Counter(scope + "invalidations"),
		entries:       slab.Gauge(scope + "entries"), bytes: slab.Gauge(scope + "bytes"),
	})
	if !ctx.DryRun {
		// A new generation starts with an empty store; the gauges
		// describe it, not the previous generation's.
		f.store.gauges()
	}
	return f, nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// PerRoute is the filter's typed_per_filter_config table on a route,
// virtual host or route table: disabled = true turns the cache off for its
// routes (their requests neither use nor fill it).
//
//	[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.cache"]
//	disabled = true
type PerRoute struct {
	// Disabled turns the filter off for the route; it must be true.
	Disabled bool `toml:"disabled"`
}

// perRoute is a built PerRoute.
type perRoute struct{ disabled bool }

// Validate implements registry.PerRouteConfig.
func (p *PerRoute) Validate() error {
	if !p.Disabled {
		return registry.Errorf("disabled", "must be true (the only per-route setting)")
	}
	return nil
}

// BuildPerRoute implements registry.PerRouteConfig.
func (p *PerRoute) BuildPerRoute(*registry.BuildContext) (any, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &perRoute{disabled: true}, nil
}
