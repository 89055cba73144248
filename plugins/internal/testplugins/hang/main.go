// Command hang is a test plugin that never answers: each check blocks until
// the caller gives up.
package main

import (
	"context"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func main() {
	authapi.Serve(authapi.AuthorizerFunc(func(ctx context.Context, _ *authapi.CheckRequest) (*authapi.CheckResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
}
