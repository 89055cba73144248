// Package connlimit is the network filter
// sluice.filters.network.connection_limit: it bounds the number of
// connections open at once through the filter chains that use it, closing
// the ones above the limit (Envoy's connection_limit filter). See README.md.
//
// sluice's workers are processes that share no memory for this, so the
// limit is kept per worker: each worker allows max_connections / workers,
// rounded up. With the kernel spreading connections over the workers'
// SO_REUSEPORT sockets, the total across workers is at most
// workers × that share, and a single worker may refuse a connection while
// another still has room.
package connlimit

import (
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.network.connection_limit"

// MaxDelay bounds delay: a refused connection is held at most this long.
const MaxDelay = time.Minute

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.Network,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
type Config struct {
	// StatPrefix names the filter's stats:
	// connection_limit.<stat_prefix>.*. Required.
	StatPrefix string `toml:"stat_prefix"`
	// MaxConnections is the limit across the workers (each gets its share,
	// rounded up). Required, >= 1.
	MaxConnections int `toml:"max_connections"`
	// Delay holds a refused connection open, reading nothing, this long
	// before closing it, to slow down clients that reconnect at once.
	// Default 0: close at once.
	Delay config.Duration `toml:"delay"`
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	return c.build(ctx.Workers)
}

// build validates c and returns the factory of a worker among workers.
func (c *Config) build(workers int) (*Factory, error) {
	if c.StatPrefix == "" {
		return nil, registry.Errorf("stat_prefix", "required")
	}
	if c.MaxConnections < 1 {
		return nil, registry.Errorf("max_connections", "must be >= 1")
	}
	if c.Delay.Duration < 0 || c.Delay.Duration > MaxDelay {
		return nil, registry.Errorf("delay", "must be in 0s..%v", MaxDelay)
	}
	workers = max(workers, 1)
	return &Factory{
		statPrefix: c.StatPrefix,
		limit:      int64((c.MaxConnections + workers - 1) / workers),
		delay:      c.Delay.Duration,
	}, nil
}
