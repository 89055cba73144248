package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// keySet is the public keys of a JWKS file, by kid.
type keySet struct {
	keys []jwk
}

type jwk struct {
	kid string
	alg string // "RS256" or "ES256"
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// loadJWKS reads RSA and P-256 EC public keys from a JWKS file (RFC 7517).
// Keys of other types or curves are skipped.
func loadJWKS(path string) (*keySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	var doc struct {
		Keys []struct {
			Kty, Kid, Use, Crv string
			N, E, X, Y         string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("jwt: %s: %w", path, err)
	}
	ks := &keySet{}
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch {
		case k.Kty == "RSA":
			n, err1 := b64int(k.N)
			e, err2 := b64int(k.E)
			if err := errors.Join(err1, err2); err != nil || !e.IsInt64() || n.BitLen() < 2048 {
				return nil, fmt.Errorf("jwt: %s: key %d: invalid RSA key (at least 2048 bits)", path, i)
			}
			ks.keys = append(ks.keys, jwk{kid: k.Kid, alg: "RS256", key: &rsa.PublicKey{N: n, E: int(e.Int64())}})
		case k.Kty == "EC" && k.Crv == "P-256":
			x, err1 := b64int(k.X)
			y, err2 := b64int(k.Y)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("jwt: %s: key %d: %w", path, i, err)
			}
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
			if _, err := pub.ECDH(); err != nil { // checks the point is on the curve
				return nil, fmt.Errorf("jwt: %s: key %d: invalid P-256 point", path, i)
			}
			ks.keys = append(ks.keys, jwk{kid: k.Kid, alg: "ES256", key: pub})
		}
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("jwt: %s: no RSA or P-256 signing key", path)
	}
	return ks, nil
}

// key returns the key for kid and alg; without a kid, the only key of alg.
func (ks *keySet) key(kid, alg string) (any, error) {
	var found any
	n := 0
	for _, k := range ks.keys {
		if k.alg == alg && (kid == "" || k.kid == kid) {
			found = k.key
			n++
		}
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	case n > 1:
		return nil, fmt.Errorf("token has no kid and the JWKS holds several %s keys", alg)
	}
	return found, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("invalid base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}
