// Package extauthz is the network filter sluice.filters.network.ext_authz:
// it asks an authorization plugin (see plugins/authapi) once per connection
// whether the connection may proceed, and closes it if not. See README.md.
package extauthz

import (
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// Name is the filter's registered name.
const Name = "sluice.filters.network.ext_authz"

// DefaultTimeout bounds a check when timeout is unset.
const DefaultTimeout = 200 * time.Millisecond

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.Network,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
type Config struct {
	// Plugin names the [[plugin]] to ask; PluginPath is the development
	// alternative (see the HTTP filter). Exactly one is required.
	Plugin     string `toml:"plugin"`
	PluginPath string `toml:"plugin_path"`
	// Timeout bounds the check (default 200ms).
	Timeout *config.Duration `toml:"timeout"`
	// FailureModeAllow keeps the connection open when the check fails;
	// default false closes it.
	FailureModeAllow bool `toml:"failure_mode_allow"`
	// IncludePeerCertificate sends the client certificate's DER bytes.
	IncludePeerCertificate bool `toml:"include_peer_certificate"`
	// ContextExtensions are passed to the plugin with every check.
	ContextExtensions map[string]string `toml:"context_extensions"`
	// StatPrefix names the filter's stats: ext_authz.<stat_prefix>.*
	// (default "ext_authz", as in Envoy's examples).
	StatPrefix string `toml:"stat_prefix"`
}

// DefaultStatPrefix is stat_prefix when unset.
const DefaultStatPrefix = "ext_authz"

// statNames are the counters under ext_authz.<stat_prefix>., in the order
// of the Stats fields.
var statNames = []string{"ok", "denied", "error", "timeout", "failure_mode_allowed", "cx_closed"}

func (c *Config) statPrefix() string {
	if c.StatPrefix == "" {
		return DefaultStatPrefix
	}
	return c.StatPrefix
}

// StatDefs implements stats.FilterStats: Envoy's network ext_authz
// counters, ext_authz.<stat_prefix>.*.
func (c *Config) StatDefs(string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: "ext_authz." + c.statPrefix() + "." + n, Kind: stats.KindCounter}
	}
	return defs
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	slab, _ := ctx.Stats.(*stats.Slab)
	f := &Factory{timeout: DefaultTimeout, failOpen: c.FailureModeAllow, extensions: c.ContextExtensions,
		includeDER: c.IncludePeerCertificate}
	ctr := func(i int) *stats.Counter { return slab.Counter("ext_authz." + c.statPrefix() + "." + statNames[i]) }
	f.Stats = Stats{OK: ctr(0), Denied: ctr(1), Error: ctr(2), Timeout: ctr(3), FailureModeAllowed: ctr(4), CxClosed: ctr(5)}
	if c.Timeout != nil {
		if c.Timeout.Duration <= 0 {
			return nil, registry.Errorf("timeout", "must be > 0")
		}
		f.timeout = c.Timeout.Duration
	}
	authz, err := plugin.Default.Resolve(c.Plugin, c.PluginPath, ctx.DryRun, ctx.Logger)
	if err != nil {
		key := "plugin"
		if c.PluginPath != "" {
			key = "plugin_path"
		}
		return nil, registry.Errorf(key, "%v", err)
	}
	f.authz = authz
	return f, nil
}

// Factory is the built filter, shared by every connection of a generation.
type Factory struct {
	authz      authapi.Authorizer // nil in a dry run
	timeout    time.Duration
	failOpen   bool
	extensions map[string]string
	includeDER bool

	// Stats counts check outcomes, ext_authz.<stat_prefix>.{ok,denied,
	// error,timeout,failure_mode_allowed,cx_closed}, in the worker's slab
	// of the shared stats region.
	Stats Stats
}

// Stats are the filter's counters; Error includes timeouts, CxClosed counts
// the connections the filter closed (denied or failed closed).
type Stats struct {
	OK, Denied, Error, Timeout, FailureModeAllowed, CxClosed *stats.Counter
}
