package authapi

import "github.com/hashicorp/go-plugin"

// Serve serves impl to sluice and returns when sluice tells the plugin to
// stop (or the process is killed). Call it from main; it does not return
// if the plugin was not started by sluice (it prints a message and exits).
func Serve(impl Authorizer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         map[string]plugin.Plugin{PluginName: &GRPCPlugin{Impl: impl}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
