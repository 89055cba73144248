// Package extauthz is the HTTP filter sluice.filters.http.ext_authz: it
// asks an authorization plugin (see plugins/authapi) whether each request
// may proceed, with Envoy ext_authz semantics. See README.md.
package extauthz

import (
	"maps"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.ext_authz"

// DefaultTimeout bounds a check when timeout is unset, as in Envoy.
const DefaultTimeout = 200 * time.Millisecond

func init() {
	registry.Register(registry.Info{
		Name:        Name,
		Kind:        registry.HTTP,
		New:         func() registry.Config { return &Config{} },
		NewPerRoute: func() registry.PerRouteConfig { return &PerRoute{} },
	})
}

// PerRoute is the filter's typed_per_filter_config table on a route,
// virtual host or route table (Envoy's ExtAuthzPerRoute): exactly one of
// disabled = true (the route's requests are not checked) and
// check_settings.
//
//	[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.ext_authz"]
//	check_settings = { context_extensions = { tier = "gold" } }
type PerRoute struct {
	// Disabled turns the filter off for the route (counted as disabled).
	Disabled bool `toml:"disabled"`
	// CheckSettings adjust the checks of the route's requests.
	CheckSettings *CheckSettings `toml:"check_settings"`
}

// CheckSettings is Envoy's CheckSettings.
type CheckSettings struct {
	// ContextExtensions are merged over the filter's context_extensions
	// for the route's checks: a key set here replaces the filter's value.
	ContextExtensions map[string]string `toml:"context_extensions"`
}

// perRoute is a built PerRoute.
type perRoute struct {
	disabled   bool
	extensions map[string]string // nil: the filter's
}

// MergePerRoute implements registry.PerRouteMerger, as Envoy merges
// ExtAuthzPerRoute: the more specific table (pr) decides whether the filter
// is disabled, and its context extensions are merged over the less
// specific one's (a key set in both takes pr's value).
func (pr *perRoute) MergePerRoute(lessSpecific any) any {
	less, ok := lessSpecific.(*perRoute)
	if !ok || len(less.extensions) == 0 || pr.disabled {
		return pr
	}
	if len(pr.extensions) == 0 {
		return &perRoute{extensions: less.extensions}
	}
	m := make(map[string]string, len(less.extensions)+len(pr.extensions))
	maps.Copy(m, less.extensions)
	maps.Copy(m, pr.extensions)
	return &perRoute{extensions: m}
}

// Validate implements registry.PerRouteConfig.
func (p *PerRoute) Validate() error {
	if p.Disabled == (p.CheckSettings != nil) {
		return registry.Errorf("", "set exactly one of disabled = true and check_settings")
	}
	if p.CheckSettings != nil {
		for k := range p.CheckSettings.ContextExtensions {
			if k == "" {
				return registry.Errorf("check_settings.context_extensions", "empty key")
			}
		}
	}
	return nil
}

// BuildPerRoute implements registry.PerRouteConfig.
func (p *PerRoute) BuildPerRoute(*registry.BuildContext) (any, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	pr := &perRoute{disabled: p.Disabled}
	if p.CheckSettings != nil && len(p.CheckSettings.ContextExtensions) > 0 {
		pr.extensions = maps.Clone(p.CheckSettings.ContextExtensions)
	}
	return pr, nil
}

// Config is the filter's TOML table.
type Config struct {
	// Plugin names the [[plugin]] to ask. Exactly one of Plugin and
	// PluginPath is required.
	Plugin string `toml:"plugin"`
	// PluginPath is an absolute path of a plugin executable that each
	// worker then runs itself: for development; use Plugin in production.
	PluginPath string `toml:"plugin_path"`
	// Timeout bounds each check (default 200ms); exceeding it is an error.
	Timeout *config.Duration `toml:"timeout"`
	// FailureModeAllow lets requests through when the check fails (error,
	// timeout, crash, invalid answer), adding the request header
	// x-envoy-auth-failure-mode-allowed: true. Default false: such requests
	// get StatusOnError.
	FailureModeAllow bool `toml:"failure_mode_allow"`
	// StatusOnError is the status of a failed check (default 403).
	StatusOnError int `toml:"status_on_error"`
	// WithRequestBody, when set, sends the request body with the check.
	WithRequestBody *BodyConfig `toml:"with_request_body"`
	// AllowedHeaders lists the request headers sent to the plugin
	// (case-insensitive). Default: every header (the codec has already
	// removed hop-by-hop fields).
	AllowedHeaders []string `toml:"allowed_headers"`
	// IncludePeerCertificate sends the client certificate's DER bytes, not
	// only its subject, SANs and hash.
	IncludePeerCertificate bool `toml:"include_peer_certificate"`
	// ContextExtensions are passed to the plugin with every check.
	ContextExtensions map[string]string `toml:"context_extensions"`
	// HTTPService, instead of a plugin, asks an HTTP authorization service
	// (Envoy's http_service: oauth2-proxy, Authelia, Authentik...).
	HTTPService *HTTPService `toml:"http_service"`
}

// BodyConfig is with_request_body.
type BodyConfig struct {
	// MaxRequestBytes bounds the body sent (required, > 0). A longer body
	// gets 413, unless AllowPartialMessage: then its first MaxRequestBytes
	// are sent, marked partial.
	MaxRequestBytes     int  `toml:"max_request_bytes"`
	AllowPartialMessage bool `toml:"allow_partial_message"`
}

// maxBodyLimit bounds max_request_bytes: bodies are held in memory.
const maxBodyLimit = 64 << 20

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	slab, _ := ctx.Stats.(*stats.Slab)
	f := &Factory{
		Stats:       newStats(slab, ctx.StatScope),
		timeout:     DefaultTimeout,
		statusOnErr: 403,
		failOpen:    c.FailureModeAllow,
		includeDER:  c.IncludePeerCertificate,
		extensions:  c.ContextExtensions,
	}
	if c.Timeout != nil {
		if c.Timeout.Duration <= 0 {
			return nil, registry.Errorf("timeout", "must be > 0")
		}
		f.timeout = c.Timeout.Duration
	}
	if c.StatusOnError != 0 {
		if c.StatusOnError < 200 || c.StatusOnError > 599 {
			return nil, registry.Errorf("status_on_error", "must be in 200..599")
		}
		f.statusOnErr = c.StatusOnError
	}
	if b := c.WithRequestBody; b != nil {
		if b.MaxRequestBytes <= 0 || b.MaxRequestBytes > maxBodyLimit {
			return nil, registry.Errorf("with_request_body.max_request_bytes", "must be in 1..%d", maxBodyLimit)
		}
		f.maxBody, f.partial = b.MaxRequestBytes, b.AllowPartialMessage
	}
	if c.AllowedHeaders != nil {
		f.allowed = map[string]bool{}
		for i, h := range c.AllowedHeaders {
			if h == "" {
				return nil, registry.Errorf("allowed_headers", "entry %d is empty", i)
			}
			f.allowed[strings.ToLower(h)] = true
		}
	}
	if c.HTTPService != nil {
		return c.buildHTTP(ctx, f)
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

// buildHTTP finishes f for http_service: the plugin's settings are
// refused.
func (c *Config) buildHTTP(ctx *registry.BuildContext, f *Factory) (any, error) {
	for _, k := range []struct {
		key string
		set bool
	}{
		{"plugin", c.Plugin != ""},
		{"plugin_path", c.PluginPath != ""},
		{"allowed_headers", c.AllowedHeaders != nil},
		{"include_peer_certificate", c.IncludePeerCertificate},
		{"context_extensions", c.ContextExtensions != nil},
	} {
		if k.set {
			if k.key == "plugin" || k.key == "plugin_path" {
				return nil, registry.Errorf(k.key, "set exactly one of plugin, plugin_path and http_service")
			}
			return nil, registry.Errorf(k.key, "not used with http_service (see http_service.authorization_request)")
		}
	}
	hs, timeout, err := buildHTTPService(c.HTTPService, c.Timeout, ctx)
	if err != nil {
		return nil, err
	}
	f.http, f.timeout, f.allowed = hs, timeout, nil
	return f, nil
}

// Factory is the built filter: immutable but for its counters, shared by
// every stream of a generation.
type Factory struct {
	authz       authapi.Authorizer // nil in a dry run or with http
	http        *httpService       // http_service; nil with a plugin
	timeout     time.Duration
	statusOnErr int
	failOpen    bool
	maxBody     int // 0: the body is not sent
	partial     bool
	allowed     map[string]bool // nil: all headers
	includeDER  bool
	extensions  map[string]string

	// Stats counts check outcomes: http.<stat_prefix>.ext_authz.{ok,
	// denied,error,timeout,failure_mode_allowed,invalid,disabled}, in the
	// worker's slab of the shared stats region.
	Stats Stats
}

// Stats are the filter's counters; error counts every failed check,
// including timeouts and invalid answers.
type Stats struct {
	OK, Denied, Error, Timeout, FailureModeAllowed, Invalid, Disabled *stats.Counter
}

// statNames are the counters' names under <scope>ext_authz., in the order
// of the Stats fields.
var statNames = []string{"ok", "denied", "error", "timeout", "failure_mode_allowed", "invalid", "disabled"}

// newStats resolves the handles under scope (e.g. "http.ingress.") in slab;
// a nil slab gives private handles.
func newStats(slab *stats.Slab, scope string) Stats {
	c := func(i int) *stats.Counter { return slab.Counter(scope + "ext_authz." + statNames[i]) }
	return Stats{OK: c(0), Denied: c(1), Error: c(2), Timeout: c(3), FailureModeAllowed: c(4), Invalid: c(5), Disabled: c(6)}
}

// StatDefs implements stats.FilterStats: Envoy's ext_authz counters under
// the HTTP connection manager's scope.
func (c *Config) StatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: scope + "ext_authz." + n, Kind: stats.KindCounter}
	}
	return defs
}
