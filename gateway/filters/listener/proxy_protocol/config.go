// Package proxyprotocol is the listener filter
// sluice.filters.listener.proxy_protocol: it reads a PROXY protocol v1 or v2
// header (HAProxy's proxy-protocol.txt) from the start of a connection,
// consumes it, and replaces the connection's source and destination
// addresses with the ones it carries, so that every later stage (filter
// chain matching, x-forwarded-for, access logs) sees the original client.
// See README.md.
package proxyprotocol

import (
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.listener.proxy_protocol"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.Listener,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
type Config struct {
	// AllowRequestsWithoutProxyProtocol lets a connection that does not
	// start with a PROXY signature through unchanged (Envoy's knob). A
	// header that starts with a signature but is malformed still closes
	// the connection. Default false: a missing header closes it.
	AllowRequestsWithoutProxyProtocol bool `toml:"allow_requests_without_proxy_protocol"`
}

// Build implements registry.Config. It returns a
// netfilter.ListenerFilterFactory.
func (c *Config) Build(*registry.BuildContext) (any, error) {
	return &factory{f: filter{allowWithout: c.AllowRequestsWithoutProxyProtocol}}, nil
}

// factory hands out one stateless filter shared by every connection.
type factory struct{ f filter }

// NewFilter implements netfilter.ListenerFilterFactory.
func (f *factory) NewFilter() netfilter.ListenerFilter { return &f.f }
