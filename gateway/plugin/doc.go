// Package plugin is sluice's host side of out-of-process plugins
// (hashicorp/go-plugin executables speaking the plugins/authapi protocol).
//
// The supervisor owns plugin processes: it calls Launch (or Supervise, which
// relaunches a plugin that exits, with capped backoff) for each configured
// [[plugin]] and passes each plugin's Reattach info, which is JSON, to its
// workers. Workers never start or stop a plugin: they record the Reattach
// info in a Registry (Set) and filters attach through Registry.Authorizer,
// which dials lazily and re-dials when the plugin restarts or the connection
// fails.
//
// go-plugin's own Client.Kill and ClientProtocol.Close both stop the plugin
// process (Close sends a Shutdown RPC), so the attaching side here closes
// only its gRPC connection.
package plugin
