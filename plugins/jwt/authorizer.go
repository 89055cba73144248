package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// options are the plugin's flags.
type options struct {
	secretFile, jwksFile string
	issuer, audience     string
	claims               string
	leeway               time.Duration
}

// forward maps one claim to an upstream request header.
type forward struct{ claim, header string }

// authorizer validates bearer JWTs. It is immutable after construction and
// safe for concurrent use.
type authorizer struct {
	secret   []byte
	keys     *keySet
	parser   *jwt.Parser
	forwards []forward
}

func newAuthorizer(o options) (*authorizer, error) {
	a := &authorizer{}
	var methods []string
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		a.secret = bytes.TrimRight(b, "\r\n")
		if len(a.secret) < 32 {
			return nil, errors.New("jwt: the HS256 secret must be at least 32 bytes")
		}
		methods = append(methods, "HS256")
	}
	if o.jwksFile != "" {
		ks, err := loadJWKS(o.jwksFile)
		if err != nil {
			return nil, err
		}
		a.keys = ks
		methods = append(methods, "RS256", "ES256")
	}
	if len(methods) == 0 {
		return nil, errors.New("jwt: one of -hs256-secret-file and -jwks is required")
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(o.leeway)}
	if o.issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.issuer))
	}
	if o.audience != "" {
		popts = append(popts, jwt.WithAudience(o.audience))
	}
	a.parser = jwt.NewParser(popts...)
	for _, pair := range strings.Split(o.claims, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		c, h, ok := strings.Cut(pair, "=")
		if !ok || c == "" || h == "" {
			return nil, fmt.Errorf("jwt: -claims: %q is not claim=header", pair)
		}
		a.forwards = append(a.forwards, forward{claim: c, header: strings.ToLower(h)})
	}
	return a, nil
}

// keyFunc picks the verification key for a token's algorithm and kid.
func (a *authorizer) keyFunc(t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case "HS256":
		if a.secret == nil {
			return nil, errors.New("no HS256 secret")
		}
		return a.secret, nil
	case "RS256", "ES256":
		if a.keys == nil {
			return nil, errors.New("no JWKS")
		}
		kid, _ := t.Header["kid"].(string)
		return a.keys.key(kid, t.Method.Alg())
	}
	return nil, fmt.Errorf("unexpected algorithm %s", t.Method.Alg())
}

// Check implements authapi.Authorizer.
func (a *authorizer) Check(_ context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	auth := r.GetHttp().GetHeaders()["authorization"]
	scheme, raw, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "bearer") || raw == "" {
		return deny("", "bearer token required"), nil
	}
	claims := jwt.MapClaims{}
	if _, err := a.parser.ParseWithClaims(strings.TrimSpace(raw), claims, a.keyFunc); err != nil {
		return deny("invalid_token", reason(err)), nil
	}
	ok := &authapi.OkResponse{}
	for _, f := range a.forwards {
		if v, found := claims[f.claim]; found {
			ok.Headers = append(ok.Headers, authapi.Header(f.header, claimString(v)))
		} else {
			// The header speaks for the token: never let the client's own
			// copy through as if it were a claim.
			ok.HeadersToRemove = append(ok.HeadersToRemove, f.header)
		}
	}
	return authapi.AllowWith(ok), nil
}

// deny answers 401 with an RFC 6750 challenge.
func deny(code, desc string) *authapi.CheckResponse {
	ch := `Bearer realm="sluice"`
	if code != "" {
		ch += fmt.Sprintf(`, error=%q, error_description=%q`, code, desc)
	}
	return authapi.Deny(401, desc+"\n", "www-authenticate", ch)
}

// reason is a short, header-safe description of a validation error.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "invalid issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "invalid audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid signature"
	}
	return "invalid token"
}

// claimString renders a claim as a header value: strings as they are, other
// values in a compact form, with control characters dropped.
func claimString(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = claimString(p)
		}
		s = strings.Join(parts, ",")
	default:
		s = fmt.Sprint(x)
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s))
}
