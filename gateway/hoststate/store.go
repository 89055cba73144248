package hoststate

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Store hands out token buckets by key. *Region is the shared store (limits
// global across workers); LocalStore is the fallback without a region.
// Implementations are safe for concurrent use.
type Store interface {
	AddBuckets(key string, n int, spec BucketSpec) (*Buckets, error)
}

// LocalStore makes buckets in this process's memory, each given
// 1/Workers of the spec's tokens (rounded up), so that Workers processes
// together allow about the configured rate. It is the fallback for a build
// that has no region, and for dry runs.
type LocalStore struct {
	// Workers is the number of processes sharing the limit; < 1 means 1.
	Workers int
}

// AddBuckets implements Store.
func (s LocalStore) AddBuckets(_ string, n int, spec BucketSpec) (*Buckets, error) {
	if w := uint32(max(s.Workers, 1)); w > 1 {
		spec.MaxTokens = (spec.MaxTokens + w - 1) / w
		spec.TokensPerFill = (spec.TokensPerFill + w - 1) / w
	}
	return NewLocalBuckets(n, spec)
}

// BucketKey joins parts into a bucket key that fits a slot whatever their
// length: a limiter's name, config path and spec identify its buckets.
func BucketKey(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "rl:" + hex.EncodeToString(sum[:20])
}

var _ Store = (*Region)(nil)
var _ Store = LocalStore{}
