// Package grpcweb is the HTTP filter sluice.filters.http.grpc_web: Envoy's
// grpc_web filter. It bridges gRPC-Web clients (browsers) to gRPC servers,
// following https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md:
// a gRPC-Web request (binary or base64 text) becomes a gRPC request, and
// the gRPC response becomes a gRPC-Web one, its trailers moved into a
// trailers frame at the end of the body. See README.md.
package grpcweb

import (
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.grpc_web"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.HTTP,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table. Like Envoy's GrpcWeb message it has
// no settings; the filter needs no config table.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.grpc_web"
type Config struct{}

// Build implements registry.Config.
func (c *Config) Build(*registry.BuildContext) (any, error) {
	return Factory{}, nil
}

// Factory builds the filter's per-stream instances. It holds nothing.
type Factory struct{}

// NewFilter implements httpfilter.Factory.
func (Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{cb: cb}
}
