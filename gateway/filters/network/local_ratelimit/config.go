// Package localratelimit is the network filter
// sluice.filters.network.local_ratelimit: a token bucket of connections;
// a connection that finds it empty is closed at once (Envoy's network
// local rate limit filter). See README.md.
//
// The bucket lives in the shared host-state region when the filter is
// built with one (see BuildWith), so the limit is global across worker
// processes; without it each worker gets 1/workers of the limit.
package localratelimit

import (
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.network.local_ratelimit"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.Network,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
type Config struct {
	// StatPrefix names the stats: local_rate_limit.<stat_prefix>.*.
	// Required.
	StatPrefix string `toml:"stat_prefix"`
	// TokenBucket limits new connections. Required.
	TokenBucket struct {
		// MaxTokens: bucket size (required, >= 1).
		MaxTokens uint32 `toml:"max_tokens"`
		// TokensPerFill: added each fill interval (default 1).
		TokensPerFill uint32 `toml:"tokens_per_fill"`
		// FillInterval: refill period (required, >= 1ms).
		FillInterval config.Duration `toml:"fill_interval"`
	} `toml:"token_bucket"`
}

// Build implements registry.Config. The region is not in the build context
// yet (see the HTTP filter of the same name): until it is, the bucket is
// per worker with the limit split by ctx.Workers.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	if s, ok := ctx.HostState.(hoststate.Store); ok && s != nil {
		return c.BuildWith(ctx, s)
	}
	return c.BuildWith(ctx, hoststate.LocalStore{Workers: ctx.Workers})
}

// BuildWith validates c and returns the factory with its bucket taken from
// store (a *hoststate.Region for a limit global across workers).
func (c *Config) BuildWith(ctx *registry.BuildContext, store hoststate.Store) (*Factory, error) {
	if c.StatPrefix == "" {
		return nil, registry.Errorf("stat_prefix", "required")
	}
	tb := c.TokenBucket
	spec := hoststate.BucketSpec{MaxTokens: tb.MaxTokens, TokensPerFill: max(tb.TokensPerFill, 1), FillInterval: tb.FillInterval.Duration}
	if err := spec.Validate(); err != nil {
		return nil, registry.Errorf("token_bucket", "%v", err)
	}
	if ctx.DryRun {
		store = hoststate.LocalStore{}
	}
	key := hoststate.BucketKey(Name, ctx.Path, fmt.Sprint(spec.MaxTokens, spec.TokensPerFill, spec.FillInterval))
	b, err := store.AddBuckets(key, 1, spec)
	if err != nil {
		return nil, registry.Errorf("token_bucket", "%v", err)
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	return &Factory{statPrefix: c.StatPrefix, bucket: b, now: time.Now,
		stats: Stats{RateLimited: slab.Counter(statName(c.StatPrefix))}}, nil
}

// Stats are the filter's counters, Envoy's
// local_rate_limit.<stat_prefix>.rate_limited.
type Stats struct {
	// RateLimited: connections closed for lack of a token.
	RateLimited *stats.Counter
}

func statName(prefix string) string { return "local_rate_limit." + prefix + ".rate_limited" }

// StatDefs implements stats.FilterStats.
func (c *Config) StatDefs(string) []stats.Def {
	return []stats.Def{{Name: statName(c.StatPrefix), Kind: stats.KindCounter}}
}

// Factory is a built filter; safe for concurrent use.
type Factory struct {
	statPrefix string
	bucket     *hoststate.Buckets
	now        func() time.Time

	stats Stats
}

// StatPrefix returns stat_prefix.
func (f *Factory) StatPrefix() string { return f.statPrefix }

// Stats returns the factory's counters.
func (f *Factory) Stats() *Stats { return &f.stats }

// NewFilter implements netfilter.Factory.
func (f *Factory) NewFilter(cb netfilter.Callbacks) netfilter.Filter {
	return &filter{f: f, cb: cb}
}

// filter runs on the connection's goroutine.
type filter struct {
	f  *Factory
	cb netfilter.Callbacks
}

// netfilter.ReadFilter

// OnNewConnection implements netfilter.ReadFilter: it takes a token or
// closes the connection.
func (l *filter) OnNewConnection() netfilter.Status {
	if ok, _, _ := l.f.bucket.Take(0, 1, l.f.now()); ok {
		return netfilter.Continue
	}
	l.f.stats.RateLimited.Inc()
	l.cb.Conn().Close()
	return netfilter.StopIteration
}

// OnData implements netfilter.ReadFilter: bytes pass unchanged.
func (l *filter) OnData(*buffer.Buffer, bool) netfilter.Status { return netfilter.Continue }

// OnEvent implements netfilter.Filter.
func (l *filter) OnEvent(netfilter.Event) {}

var (
	_ netfilter.Factory    = (*Factory)(nil)
	_ netfilter.ReadFilter = (*filter)(nil)
)
