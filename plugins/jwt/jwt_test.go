package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type fixture struct {
	dir    string
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	a      *authorizer
}

func b64(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.Bytes()) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(f.rsaKey.N), "e": b64(big.NewInt(int64(f.rsaKey.E)))},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(f.ecKey.X), "y": b64(f.ecKey.Y)},
	}})
	write(t, filepath.Join(f.dir, "jwks.json"), string(jwks))
	write(t, filepath.Join(f.dir, "secret"), string(secret)+"\n")
	f.a, err = newAuthorizer(options{
		secretFile: filepath.Join(f.dir, "secret"),
		jwksFile:   filepath.Join(f.dir, "jwks.json"),
		issuer:     "https://issuer.example",
		audience:   "sluice",
		claims:     "sub=x-jwt-sub,email=x-jwt-email",
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sign makes a token with alg, the standard good claims, and changes.
func (f *fixture) sign(t *testing.T, alg string, change func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": "https://issuer.example", "aud": "sluice", "sub": "alice", "email": "alice@example.com",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(),
	}
	if change != nil {
		change(c)
	}
	var tok *jwt.Token
	var key any
	switch alg {
	case "HS256":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodHS256, c), secret
	case "RS256":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodRS256, c), f.rsaKey
		tok.Header["kid"] = "r1"
	case "ES256":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodES256, c), f.ecKey
		tok.Header["kid"] = "e1"
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func check(t *testing.T, a authapi.Authorizer, authz string) *authapi.CheckResponse {
	t.Helper()
	resp, err := a.Check(context.Background(), &authapi.CheckRequest{Http: &authapi.HTTPRequest{Headers: map[string]string{"authorization": authz}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := authapi.Validate(resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	for _, alg := range []string{"HS256", "RS256", "ES256"} {
		for _, tc := range []struct {
			name   string
			change func(jwt.MapClaims)
			deny   string // "" = allowed; else in the www-authenticate challenge
		}{
			{"valid", nil, ""},
			{"expired", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, "token expired"},
			{"not yet valid", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }, "not valid yet"},
			{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }, "required claim missing"},
			{"bad aud", func(c jwt.MapClaims) { c["aud"] = "other" }, "invalid audience"},
			{"bad iss", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }, "invalid issuer"},
		} {
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				resp := check(t, f.a, "Bearer "+f.sign(t, alg, tc.change))
				if tc.deny == "" {
					ok := resp.GetOk()
					if ok == nil || len(ok.Headers) != 2 || ok.Headers[0].Header.Value != "alice" || ok.Headers[1].Header.Key != "x-jwt-email" {
						t.Fatalf("want allowed with claims forwarded, got %v", resp)
					}
					return
				}
				d := resp.GetDenied()
				if d == nil || d.Status != 401 || !strings.Contains(d.Headers[0].Header.Value, tc.deny) {
					t.Fatalf("want 401 %q, got %v", tc.deny, resp)
				}
			})
		}
	}
}

func TestMissingClaimRemovesItsForwardedHeader(t *testing.T) {
	f := newFixture(t)
	ok := check(t, f.a, "Bearer "+f.sign(t, "HS256", func(c jwt.MapClaims) { delete(c, "email") })).GetOk()
	if ok == nil || len(ok.Headers) != 1 || ok.Headers[0].Header.Key != "x-jwt-sub" {
		t.Fatalf("want allowed with only x-jwt-sub set, got %v", ok)
	}
	if len(ok.HeadersToRemove) != 1 || ok.HeadersToRemove[0] != "x-jwt-email" {
		t.Fatalf("headers_to_remove = %q, want [x-jwt-email]", ok.HeadersToRemove)
	}
}

func TestForgedAndMalformedTokensAreDenied(t *testing.T) {
	f := newFixture(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "aud": "sluice", "iss": "https://issuer.example"})
	forged.Header["kid"] = "e1"
	forgedS, _ := forged.SignedString(other)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, authz := range map[string]string{
		"no header": "", "basic": "Basic YTpi", "garbage": "Bearer abc.def.ghi",
		"forged signature": "Bearer " + forgedS, "alg none": "Bearer " + none,
	} {
		if d := check(t, f.a, authz).GetDenied(); d == nil || d.Status != 401 {
			t.Errorf("%s: not denied with 401", name)
		}
	}
}

func TestPluginBinaryValidatesTokens(t *testing.T) {
	f := newFixture(t)
	p := plugintest.Launch(t, plugin.Config{
		Name: "jwt-bin",
		Path: plugintest.Build(t, "github.com/sluice-proxy/sluice/plugins/jwt"),
		Args: []string{"-hs256-secret-file", filepath.Join(f.dir, "secret"), "-jwks", filepath.Join(f.dir, "jwks.json"), "-aud", "sluice"},
	})
	a, err := plugin.Dial(p.Reattach())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if check(t, a, "Bearer "+f.sign(t, "RS256", nil)).GetOk() == nil {
		t.Fatal("valid RS256 token denied by the plugin binary")
	}
	if check(t, a, "Bearer "+f.sign(t, "HS256", func(c jwt.MapClaims) { c["aud"] = "x" })).GetDenied() == nil {
		t.Fatal("bad audience allowed by the plugin binary")
	}
}
