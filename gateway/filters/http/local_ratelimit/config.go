// Package localratelimit is the HTTP filter
// sluice.filters.http.local_ratelimit: token buckets that answer 429 to the
// requests over the limit, with Envoy's local rate limit semantics. See
// README.md.
//
// The buckets live in the shared host-state region when the filter is
// built with one (see Store), so a limit is global across worker
// processes; without it each worker gets 1/workers of the limit.
package localratelimit

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.local_ratelimit"

// DefaultDescriptorBuckets is how many buckets a descriptor without a
// fixed value spreads its values over.
const DefaultDescriptorBuckets = 1024

// Header modes of enable_x_ratelimit_headers.
const (
	HeadersOff     = "OFF"
	HeadersDraft03 = "DRAFT_VERSION_03"
)

func init() {
	registry.Register(registry.Info{
		Name:        Name,
		Kind:        registry.HTTP,
		New:         func() registry.Config { return &Config{} },
		NewPerRoute: func() registry.PerRouteConfig { return &Config{} },
	})
}

// TokenBucket is Envoy's TokenBucket.
type TokenBucket struct {
	// MaxTokens is the bucket's size, and how many tokens it starts with.
	// Required, >= 1.
	MaxTokens uint32 `toml:"max_tokens"`
	// TokensPerFill are added at each fill interval. Default 1.
	TokensPerFill uint32 `toml:"tokens_per_fill"`
	// FillInterval is the refill period. Required, >= 1ms.
	FillInterval config.Duration `toml:"fill_interval"`
}

func (b TokenBucket) spec() (hoststate.BucketSpec, error) {
	s := hoststate.BucketSpec{MaxTokens: b.MaxTokens, TokensPerFill: max(b.TokensPerFill, 1), FillInterval: b.FillInterval.Duration}
	return s, s.Validate()
}

// Descriptor gives requests that match it a bucket of their own instead of
// the filter's: by the value of a request header, or by the client's
// address.
type Descriptor struct {
	// Header is the request header whose value selects the bucket (a
	// request without it does not match).
	Header string `toml:"header"`
	// SourceAddress selects the bucket by the downstream address.
	SourceAddress bool `toml:"source_address"`
	// Value, if set, matches only requests whose header has this value,
	// which then share one bucket. If empty, each value gets its own
	// bucket among Buckets (values that hash alike share one).
	Value string `toml:"value"`
	// Buckets is the number of buckets values spread over (default 1024).
	Buckets int `toml:"buckets"`
	// TokenBucket is the limit of each bucket.
	TokenBucket TokenBucket `toml:"token_bucket"`
}

// Config is the filter's TOML table.
type Config struct {
	// StatPrefix names the stats: http_local_rate_limit.<stat_prefix>.*.
	// Required.
	StatPrefix string `toml:"stat_prefix"`
	// TokenBucket is the limit of requests no descriptor matches. Required.
	TokenBucket TokenBucket `toml:"token_bucket"`
	// Descriptors are tried in order; the first that matches a request
	// selects its bucket.
	Descriptors []Descriptor `toml:"descriptor"`
	// Status of the limited requests' reply. Default 429.
	Status int `toml:"status"`
	// EnableXRateLimitHeaders is "OFF" (default) or "DRAFT_VERSION_03":
	// add x-ratelimit-limit, -remaining and -reset to responses.
	EnableXRateLimitHeaders string `toml:"enable_x_ratelimit_headers"`
}

// Build implements registry.Config. The region is not in the build context
// yet: until it is (a HostState field holding the *hoststate.Region), the
// buckets are per worker with the limit split by ctx.Workers.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	if s, ok := ctx.HostState.(hoststate.Store); ok && s != nil {
		return c.BuildWith(ctx, s)
	}
	return c.BuildWith(ctx, hoststate.LocalStore{Workers: ctx.Workers})
}

// BuildWith validates c and returns the factory with its buckets taken
// from store (a *hoststate.Region for limits global across workers).
func (c *Config) BuildWith(ctx *registry.BuildContext, store hoststate.Store) (*Factory, error) {
	if c.StatPrefix == "" {
		return nil, registry.Errorf("stat_prefix", "required")
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	f := &Factory{statPrefix: c.StatPrefix, status: c.Status, now: time.Now, stats: newStats(slab, c.StatPrefix)}
	if f.status == 0 {
		f.status = 429
	}
	if f.status < 400 || f.status > 599 {
		return nil, registry.Errorf("status", "must be 400..599")
	}
	switch c.EnableXRateLimitHeaders {
	case "", HeadersOff:
	case HeadersDraft03:
		f.headers = true
	default:
		return nil, registry.Errorf("enable_x_ratelimit_headers", "must be OFF or DRAFT_VERSION_03")
	}
	if ctx.DryRun {
		store = hoststate.LocalStore{}
	}
	var err error
	if f.def, err = bucketFor(store, ctx.Path, "default", c.TokenBucket, 1); err != nil {
		return nil, registry.Errorf("token_bucket", "%v", err)
	}
	for i, d := range c.Descriptors {
		key := fmt.Sprintf("descriptor[%d]", i)
		if (d.Header == "") == !d.SourceAddress {
			return nil, registry.Errorf(key, "set exactly one of header and source_address")
		}
		if d.SourceAddress && d.Value != "" {
			return nil, registry.Errorf(key+".value", "not with source_address")
		}
		n := 1
		if d.Value == "" {
			n = d.Buckets
			if n == 0 {
				n = DefaultDescriptorBuckets
			}
			if n < 1 || n > 1<<20 {
				return nil, registry.Errorf(key+".buckets", "must be 1..1048576")
			}
		}
		b, err := bucketFor(store, ctx.Path, key+"|"+d.Header+"|"+d.Value+"|"+strconv.FormatBool(d.SourceAddress), d.TokenBucket, n)
		if err != nil {
			return nil, registry.Errorf(key+".token_bucket", "%v", err)
		}
		f.descs = append(f.descs, descriptor{header: asciiLower(d.Header), source: d.SourceAddress, value: []byte(d.Value), buckets: b})
	}
	return f, nil
}

// Validate implements registry.PerRouteConfig: a typed_per_filter_config
// table has the same keys as the filter's own, and gives its routes their
// own buckets and counters (under its stat_prefix), as in Envoy.
func (c *Config) Validate() error {
	if c.StatPrefix == "" {
		return registry.Errorf("stat_prefix", "required")
	}
	if c.Status != 0 && (c.Status < 400 || c.Status > 599) {
		return registry.Errorf("status", "must be 400..599")
	}
	switch c.EnableXRateLimitHeaders {
	case "", HeadersOff, HeadersDraft03:
	default:
		return registry.Errorf("enable_x_ratelimit_headers", "must be OFF or DRAFT_VERSION_03")
	}
	if _, err := c.TokenBucket.spec(); err != nil {
		return registry.Errorf("token_bucket", "%v", err)
	}
	for i, d := range c.Descriptors {
		if _, err := d.TokenBucket.spec(); err != nil {
			return registry.Errorf(fmt.Sprintf("descriptor[%d].token_bucket", i), "%v", err)
		}
	}
	return nil
}

// BuildPerRoute implements registry.PerRouteConfig: the per-route
// *Factory, whose buckets are keyed by the table's path (ctx.Path) in the
// host-state region like the filter's own, so that every worker shares
// them.
func (c *Config) BuildPerRoute(ctx *registry.BuildContext) (any, error) {
	return c.Build(ctx)
}

func bucketFor(store hoststate.Store, path, which string, tb TokenBucket, n int) (*hoststate.Buckets, error) {
	spec, err := tb.spec()
	if err != nil {
		return nil, err
	}
	key := hoststate.BucketKey(Name, path, which, fmt.Sprint(spec.MaxTokens, spec.TokensPerFill, spec.FillInterval))
	return store.AddBuckets(key, n, spec)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
