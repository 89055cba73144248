// Package httpinspector is the listener filter
// sluice.filters.listener.http_inspector: on plaintext connections it peeks
// at the first bytes, without consuming them, and sets the application
// protocol filter-chain matching sees: "http/1.1" or "http/1.0" for an
// HTTP/1.x request line, "h2c" for the HTTP/2 prior-knowledge preface. See
// README.md.
package httpinspector

import (
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.listener.http_inspector"

// MaxInspectSize bounds the bytes peeked for a request line, as Envoy's
// http_inspector does; a longer first line is not taken for HTTP.
const MaxInspectSize = 8192

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
