package authapi

import (
	"math"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// MaxMessageBytes is the largest check request (and response) the plugin's
// gRPC server accepts: as large as sluice's side sends (go-plugin's client
// limit), not gRPC's default 4 MiB, which a request carrying a body of more
// than about 4 MiB (with_request_body allows up to 64 MiB) would exceed.
const MaxMessageBytes = math.MaxInt32

// Serve serves impl to sluice and returns when sluice tells the plugin to
// stop (or the process is killed). Call it from main; it does not return
// if the plugin was not started by sluice (it prints a message and exits).
func Serve(impl Authorizer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         map[string]plugin.Plugin{PluginName: &GRPCPlugin{Impl: impl}},
		GRPCServer:      newGRPCServer,
	})
}

// newGRPCServer is go-plugin's default server with MaxMessageBytes.
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
	return grpc.NewServer(opts...)
}
