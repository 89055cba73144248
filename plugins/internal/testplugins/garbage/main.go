// Command garbage is a test plugin that answers invalid responses, chosen by
// the request path: /crlf sets a header value with CR and LF, /status denies
// with status 1000, /empty answers neither OK nor denied, /name sets a header
// whose name is not a token. Other paths are allowed.
package main

import (
	"context"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func check(_ context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	switch r.GetHttp().GetPath() {
	case "/crlf":
		return authapi.Allow("x-injected", "a\r\nset-cookie: evil=1"), nil
	case "/status":
		return authapi.Deny(1000, "nonsense"), nil
	case "/empty":
		return &authapi.CheckResponse{}, nil
	case "/name":
		return authapi.Allow("bad name", "v"), nil
	}
	return authapi.Allow(), nil
}

func main() { authapi.Serve(authapi.AuthorizerFunc(check)) }
