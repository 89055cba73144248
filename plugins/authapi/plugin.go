package authapi

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	authpb "github.com/sluice-proxy/sluice/plugins/authapi/proto"
)

// PluginName is the name under which a plugin executable serves its
// Authorizer (the key of PluginMap).
const PluginName = "authorizer"

// Handshake is the go-plugin handshake shared by sluice and its plugins. A
// plugin started by anything else than sluice exits with a message instead
// of serving. ProtocolVersion changes only with incompatible protocol
// changes.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SLUICE_AUTH_PLUGIN",
	MagicCookieValue: "c5b1e7a0-auth-v1",
}

// PluginMap is the go-plugin plugin set of sluice's host side: it dispenses
// no implementation, only gRPC clients.
var PluginMap = map[string]plugin.Plugin{PluginName: &GRPCPlugin{}}

// GRPCPlugin is the go-plugin glue of Authorizer: on the plugin side it
// serves Impl over gRPC, on the sluice side it returns a gRPC client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin's implementation; nil on the sluice side.
	Impl Authorizer
}

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	authpb.RegisterAuthorizerServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient implements plugin.GRPCPlugin. The returned value is an
// Authorizer.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)
