// Package authapi is the SDK for sluice authorization plugins: executables
// that sluice's ext_authz filters (sluice.filters.http.ext_authz and
// sluice.filters.network.ext_authz) call to allow or deny a request or a
// connection, with Envoy ext_authz semantics.
//
// A plugin implements Authorizer and calls Serve from its main function:
//
//	type allowAll struct{}
//
//	func (allowAll) Check(ctx context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
//		return authapi.Allow(), nil
//	}
//
//	func main() { authapi.Serve(allowAll{}) }
//
// The plugin speaks gRPC (proto/auth.proto) through hashicorp/go-plugin: the
// sluice supervisor starts it with the Handshake cookie, and every worker
// connects to it. plugins/README.md walks through writing, building and
// configuring one.
package authapi

import (
	"context"

	authpb "github.com/sluice-proxy/sluice/plugins/authapi/proto"
)

// The protocol's messages, re-exported so that plugins need one import.
type (
	// CheckRequest is what sluice knows about a request or a connection.
	CheckRequest = authpb.CheckRequest
	// CheckResponse is the plugin's answer: OK or denied.
	CheckResponse = authpb.CheckResponse
	// HTTPRequest is the HTTP part of a CheckRequest.
	HTTPRequest = authpb.HttpRequest
	// Peer is one end of the downstream connection.
	Peer = authpb.Peer
	// Certificate describes a peer certificate.
	Certificate = authpb.Certificate
	// OkResponse lets a request through, with header changes.
	OkResponse = authpb.OkResponse
	// DeniedResponse refuses a request with a local reply.
	DeniedResponse = authpb.DeniedResponse
	// HeaderValueOption is a header to set or append.
	HeaderValueOption = authpb.HeaderValueOption
	// HeaderValue is one header field.
	HeaderValue = authpb.HeaderValue
)

// Authorizer decides whether a request may proceed.
//
// In a plugin, Check is called concurrently, once per request, by every
// sluice worker: implementations must be safe for concurrent use. ctx
// carries the caller's deadline (the filter's timeout) and is cancelled when
// the caller gives up. The request must not be retained after Check returns.
//
// Returning an error (or a response with neither OK nor Denied set) is an
// authorization error: the filter applies its failure mode, as it does when
// the plugin hangs, crashes or times out. To refuse a request, return a
// denied response, not an error.
//
// On the sluice side, the Authorizer handed to filters is safe for
// concurrent use; its errors are gRPC status errors (codes.Unavailable when
// the plugin is gone, codes.DeadlineExceeded on timeout).
type Authorizer interface {
	Check(ctx context.Context, req *CheckRequest) (*CheckResponse, error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, req *CheckRequest) (*CheckResponse, error)

// Check calls f.
func (f AuthorizerFunc) Check(ctx context.Context, req *CheckRequest) (*CheckResponse, error) {
	return f(ctx, req)
}

// Allow returns an OK response that sets the given upstream request headers,
// given as name/value pairs ("x-user", "alice", ...). An odd trailing name is
// ignored.
func Allow(headerPairs ...string) *CheckResponse {
	ok := &OkResponse{}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		ok.Headers = append(ok.Headers, Header(headerPairs[i], headerPairs[i+1]))
	}
	return &CheckResponse{Result: &authpb.CheckResponse_Ok{Ok: ok}}
}

// AllowWith returns an OK response carrying ok.
func AllowWith(ok *OkResponse) *CheckResponse {
	return &CheckResponse{Result: &authpb.CheckResponse_Ok{Ok: ok}}
}

// Deny returns a denied response with status (0 means 403), body and the
// given reply headers as name/value pairs.
func Deny(status int, body string, headerPairs ...string) *CheckResponse {
	d := &DeniedResponse{Status: uint32(max(status, 0)), Body: body}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		d.Headers = append(d.Headers, Header(headerPairs[i], headerPairs[i+1]))
	}
	return &CheckResponse{Result: &authpb.CheckResponse_Denied{Denied: d}}
}

// Header returns a header that replaces any existing field of that name.
func Header(name, value string) *HeaderValueOption {
	return &HeaderValueOption{Header: &HeaderValue{Key: name, Value: value}}
}
