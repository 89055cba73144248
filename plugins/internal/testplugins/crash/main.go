// Command crash is a test plugin: a check of path /exit kills the plugin
// mid-request (exit status 3); a check of /block writes "pending" and a
// newline to the FIFO named by $SLUICE_TEST_FIFO, then blocks until the
// caller gives up, so that a test can kill the plugin while a check is
// pending; anything else is allowed with x-plugin-pid set to the plugin's
// process id.
package main

import (
	"context"
	"os"
	"strconv"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func check(ctx context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	switch r.GetHttp().GetPath() {
	case "/exit":
		os.Exit(3)
	case "/block":
		if f, err := os.OpenFile(os.Getenv("SLUICE_TEST_FIFO"), os.O_WRONLY, 0); err == nil {
			f.WriteString("pending\n")
			f.Close()
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return authapi.Allow("x-plugin-pid", strconv.Itoa(os.Getpid())), nil
}

func main() { authapi.Serve(authapi.AuthorizerFunc(check)) }
