package authapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authpb "github.com/sluice-proxy/sluice/plugins/authapi/proto"
)

// server adapts an Authorizer to the generated gRPC service.
type server struct {
	authpb.UnimplementedAuthorizerServer
	impl Authorizer
}

// Check implements authpb.AuthorizerServer. A panic in the implementation
// becomes an Internal error for that request instead of killing the plugin.
func (s *server) Check(ctx context.Context, req *authpb.CheckRequest) (resp *authpb.CheckResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, status.Errorf(codes.Internal, "authapi: plugin panicked: %v", r)
		}
	}()
	if s.impl == nil {
		return nil, status.Error(codes.Unimplemented, "authapi: no authorizer")
	}
	return s.impl.Check(ctx, req)
}

// client is the sluice side of the gRPC service.
type client struct{ c authpb.AuthorizerClient }

// NewClient returns an Authorizer that calls the plugin served on conn. It
// is safe for concurrent use.
func NewClient(conn grpc.ClientConnInterface) Authorizer {
	return &client{c: authpb.NewAuthorizerClient(conn)}
}

// Check implements Authorizer.
func (c *client) Check(ctx context.Context, req *CheckRequest) (*CheckResponse, error) {
	return c.c.Check(ctx, req)
}
