// Package cors is the HTTP filter sluice.filters.http.cors: Envoy's CORS
// filter with the policy in the filter's own table. It answers the
// preflight requests of allowed origins itself and adds the
// access-control-* headers to their actual responses. See README.md.
package cors

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.cors"

func init() {
	registry.Register(registry.Info{
		Name:        Name,
		Kind:        registry.HTTP,
		New:         func() registry.Config { return &Config{} },
		NewPerRoute: func() registry.PerRouteConfig { return &Config{} },
	})
}

// OriginMatcher matches an Origin header value: exactly one of Exact,
// Prefix, Suffix, Contains and Regex (RE2, matched against the whole
// value), case-insensitively with IgnoreCase.
type OriginMatcher struct {
	Exact      string `toml:"exact"`
	Prefix     string `toml:"prefix"`
	Suffix     string `toml:"suffix"`
	Contains   string `toml:"contains"`
	Regex      string `toml:"regex"`
	IgnoreCase bool   `toml:"ignore_case"`
}

// Config is the filter's TOML table: Envoy's CorsPolicy.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.cors"
//	[listener.filter_chain.filter.config.http_filter.config]
//	allow_origin_string_match = [{ exact = "https://app.example.com" }]
//	allow_methods = "GET, POST"
type Config struct {
	// AllowOriginStringMatch lists the allowed origins; a request whose
	// Origin matches none is left alone. Required.
	AllowOriginStringMatch []OriginMatcher `toml:"allow_origin_string_match"`
	// AllowMethods, AllowHeaders and ExposeHeaders are the values of
	// access-control-allow-methods, -allow-headers and -expose-headers.
	AllowMethods  string `toml:"allow_methods"`
	AllowHeaders  string `toml:"allow_headers"`
	ExposeHeaders string `toml:"expose_headers"`
	// MaxAge is access-control-max-age, in seconds ("" for none).
	MaxAge string `toml:"max_age"`
	// AllowCredentials adds access-control-allow-credentials: true (default
	// false; in a per-route table, unset takes a less specific level's).
	AllowCredentials *bool `toml:"allow_credentials"`
	// ForwardNotMatchingPreflights passes preflights from origins not
	// allowed to the upstream (default true); false answers them 200
	// without CORS headers.
	ForwardNotMatchingPreflights *bool `toml:"forward_not_matching_preflights"`
}

// statNames are Envoy's CORS counters under http.<stat_prefix>.cors..
var statNames = []string{"origin_valid", "origin_invalid"}

// StatDefs implements stats.FilterStats.
func (c *Config) StatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: scope + "cors." + n, Kind: stats.KindCounter}
	}
	return defs
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	p, err := c.policy()
	if err != nil {
		return nil, err
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	return &Factory{policy: p,
		valid:   slab.Counter(ctx.StatScope + "cors.origin_valid"),
		invalid: slab.Counter(ctx.StatScope + "cors.origin_invalid")}, nil
}

// Validate implements registry.PerRouteConfig: a typed_per_filter_config
// table has the same keys as the filter's own, all optional.
func (c *Config) Validate() error {
	_, err := c.compile(false)
	return err
}

// BuildPerRoute implements registry.PerRouteConfig: the policy replaces
// the filter's for the routes it applies to, each of its keys left out
// taken from a less specific table (MergePerRoute); the counters stay the
// filter's.
func (c *Config) BuildPerRoute(*registry.BuildContext) (any, error) {
	return c.compile(false)
}

// policy compiles the filter's own policy.
func (c *Config) policy() (*policy, error) { return c.compile(true) }

// compile compiles c; the origins are required in the filter's own policy
// (needOrigins), optional in a per-route table.
func (c *Config) compile(needOrigins bool) (*policy, error) {
	if len(c.AllowOriginStringMatch) == 0 && needOrigins {
		return nil, registry.Errorf("allow_origin_string_match", "required: at least one origin matcher")
	}
	p := &policy{forward: c.ForwardNotMatchingPreflights == nil || *c.ForwardNotMatchingPreflights,
		methods: c.AllowMethods, headers: c.AllowHeaders, expose: c.ExposeHeaders,
		maxAge: c.MaxAge, credentials: c.AllowCredentials != nil && *c.AllowCredentials}
	for _, f := range []struct {
		bit uint8
		set bool
	}{{setOrigins, len(c.AllowOriginStringMatch) > 0}, {setMethods, c.AllowMethods != ""}, {setHeaders, c.AllowHeaders != ""},
		{setExpose, c.ExposeHeaders != ""}, {setMaxAge, c.MaxAge != ""}, {setCredentials, c.AllowCredentials != nil},
		{setForward, c.ForwardNotMatchingPreflights != nil}} {
		if f.set {
			p.set |= f.bit
		}
	}
	for i, m := range c.AllowOriginStringMatch {
		key := fmt.Sprintf("allow_origin_string_match[%d]", i)
		om, err := compile(m)
		if err != nil {
			return nil, registry.Errorf(key, "%v", err)
		}
		p.origins = append(p.origins, om)
	}
	if c.MaxAge != "" {
		if n, err := strconv.ParseUint(c.MaxAge, 10, 32); err != nil {
			return nil, registry.Errorf("max_age", "must be a number of seconds, got %q", c.MaxAge)
		} else {
			p.maxAge = strconv.FormatUint(n, 10)
		}
	}
	for _, kv := range []struct{ key, v string }{{"allow_methods", c.AllowMethods}, {"allow_headers", c.AllowHeaders}, {"expose_headers", c.ExposeHeaders}} {
		if !http1.ValidFieldValue(kv.v) {
			return nil, registry.Errorf(kv.key, "not a valid field value (control characters, or leading or trailing whitespace)")
		}
	}
	return p, nil
}

// originMatcher is a compiled OriginMatcher.
type originMatcher struct {
	kind       byte // 'e'xact, 'p'refix, 's'uffix, 'c'ontains, 'r'egex
	s          string
	re         *regexp.Regexp
	ignoreCase bool
}

func compile(m OriginMatcher) (originMatcher, error) {
	om := originMatcher{ignoreCase: m.IgnoreCase}
	n := 0
	for _, c := range []struct {
		kind byte
		s    string
	}{{'e', m.Exact}, {'p', m.Prefix}, {'s', m.Suffix}, {'c', m.Contains}, {'r', m.Regex}} {
		if c.s != "" {
			om.kind, om.s = c.kind, c.s
			n++
		}
	}
	if n != 1 {
		return om, fmt.Errorf("set exactly one of exact, prefix, suffix, contains and regex")
	}
	if om.kind == 'r' {
		expr := "^(?:" + om.s + ")$"
		if om.ignoreCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return om, fmt.Errorf("regex: %v", err)
		}
		om.re = re
	}
	return om, nil
}

func (m *originMatcher) match(origin []byte) bool {
	if m.re != nil {
		return m.re.Match(origin)
	}
	eq := func(a []byte, b string) bool {
		if m.ignoreCase {
			return len(a) == len(b) && bytes.EqualFold(a, []byte(b))
		}
		return string(a) == b
	}
	switch n := len(m.s); m.kind {
	case 'e':
		return eq(origin, m.s)
	case 'p':
		return len(origin) >= n && eq(origin[:n], m.s)
	case 's':
		return len(origin) >= n && eq(origin[len(origin)-n:], m.s)
	}
	for i := 0; i+len(m.s) <= len(origin); i++ {
		if eq(origin[i:i+len(m.s)], m.s) {
			return true
		}
	}
	return false
}
