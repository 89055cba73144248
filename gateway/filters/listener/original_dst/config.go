// Package originaldst is the listener filter
// sluice.filters.listener.original_dst: it recovers the destination a
// connection had before an iptables REDIRECT or DNAT rule sent it to sluice
// (SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6, from the
// kernel's connection tracking) and makes it the connection's local
// address. See README.md.
package originaldst

import (
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.listener.original_dst"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.Listener,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table. The filter has no settings; the table
// may be omitted.
type Config struct{}

// Build implements registry.Config. It returns a
// netfilter.ListenerFilterFactory.
func (c *Config) Build(*registry.BuildContext) (any, error) {
	return factory{}, nil
}

// factory hands out the one stateless filter shared by every connection.
type factory struct{}

// NewFilter implements netfilter.ListenerFilterFactory.
func (factory) NewFilter() netfilter.ListenerFilter { return filter{} }
