// Command jwt is a sluice authorization plugin that validates bearer JWTs:
// HS256 with a shared secret, RS256 and ES256 with keys from a local JWKS
// file; exp and nbf always, iss and aud when configured. Chosen claims are
// forwarded upstream as headers (a client's own copy of such a header is removed
// when the token lacks the claim). Requests without a valid token are denied
// with 401 and a www-authenticate: Bearer challenge.
//
// Usage: jwt [-hs256-secret-file F] [-jwks F] [-iss ISS] [-aud AUD]
//
//	[-claims sub=x-jwt-sub,email=x-jwt-email] [-leeway 30s]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func main() {
	var o options
	flag.StringVar(&o.secretFile, "hs256-secret-file", "", "file holding the HS256 secret (trailing newline ignored)")
	flag.StringVar(&o.jwksFile, "jwks", "", "JWKS file with the RS256/ES256 public keys")
	flag.StringVar(&o.issuer, "iss", "", "required issuer (iss), if set")
	flag.StringVar(&o.audience, "aud", "", "required audience (aud), if set")
	flag.StringVar(&o.claims, "claims", "sub=x-jwt-sub", "claims forwarded upstream: claim=header,...")
	flag.DurationVar(&o.leeway, "leeway", 0, "clock skew allowed for exp and nbf")
	flag.Parse()
	a, err := newAuthorizer(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	authapi.Serve(a)
}
