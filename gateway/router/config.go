// Package router is the terminal HTTP filter: it matches the request to a
// route (see Table), and either answers locally (direct response, redirect)
// or sends the request to a host of the route's cluster over a pooled
// upstream connection and streams the response back.
package router

import (
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the router's registered filter name.
const Name = "sluice.filters.http.router"

func init() {
	registry.Register(registry.Info{
		Name:     Name,
		Kind:     registry.HTTP,
		Terminal: true,
		New:      func() registry.Config { return &Config{} },
	})
}

// Config is the router's TOML table. It has no keys yet; routes carry the
// per-request settings.
type Config struct{}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	log := ctx.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &factory{log: log}, nil
}
