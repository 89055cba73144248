// Command slow is a test plugin that allows every request after a delay
// (-delay, default 50ms).
package main

import (
	"context"
	"flag"
	"time"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func main() {
	delay := flag.Duration("delay", 50*time.Millisecond, "how long each check takes")
	flag.Parse()
	authapi.Serve(authapi.AuthorizerFunc(func(ctx context.Context, _ *authapi.CheckRequest) (*authapi.CheckResponse, error) {
		t := time.NewTimer(*delay)
		defer t.Stop()
		select {
		case <-t.C:
			return authapi.Allow("x-slow", "done"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
}
