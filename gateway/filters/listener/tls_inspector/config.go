// Package tlsinspector is the listener filter
// sluice.filters.listener.tls_inspector: it peeks at a connection's TLS
// ClientHello, without consuming it, and exposes the transport protocol, the
// server name (SNI) and the offered ALPN protocols to filter-chain matching.
// See README.md.
package tlsinspector

import (
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.listener.tls_inspector"

// MaxClientHelloSize bounds the bytes peeked for a ClientHello (records and
// their headers), as Envoy's 64 KiB buffer does. A ClientHello that does
// not fit closes the connection.
const MaxClientHelloSize = 64 << 10

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

// factory hands out the one stateless filter: OnAccept keeps nothing
// between calls, so every connection shares it.
type factory struct{}

// NewFilter implements netfilter.ListenerFilterFactory.
func (factory) NewFilter() netfilter.ListenerFilter { return filter{} }
