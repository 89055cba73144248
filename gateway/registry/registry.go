// Package registry maps dotted filter names to their config types. Filters
// register from init() (see gateway/filters/all); the config loader looks a
// name up, decodes the filter's TOML table into the value New returns, and the
// generation builder calls Build on it.
//
// The tables are written only during package initialisation and read-only
// afterwards, so lookups need no lock.
package registry

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Kind is the kind of filter a name belongs to.
type Kind string

// The three filter kinds.
const (
	Listener Kind = "listener"
	Network  Kind = "network"
	HTTP     Kind = "http"
)

// BuildContext carries what a filter's Build may use. It is valid only during
// Build.
type BuildContext struct {
	// Logger is the component logger.
	Logger *zap.Logger
	// Path is the config key path of the filter's table, for errors.
	Path string
	// RouteTable returns the route table of the named route_config.
	RouteTable func(name string) (httpfilter.RouteTable, error)
	// DryRun is true when the build only validates (sluice validate, the
	// supervisor before a reload): Build must not start anything.
	DryRun bool
	// Clusters is the generation's cluster manager, a *cluster.Manager
	// (typed any: the registry sits below the cluster package). Filters
	// that proxy (tcp_proxy) type-assert it.
	Clusters any
	// Stats is the worker's stats slab, a *stats.Slab, and AccessLogs its
	// shared access log files, an *accesslog.Files (typed any for the same
	// reason). Filters resolve their stat handles and loggers in Build.
	Stats      any
	AccessLogs any
	// StatScope is the stat scope of the filter's HTTP connection manager,
	// "http.<stat_prefix>." (empty outside one): HTTP filters name their
	// stats under it, as Envoy does.
	StatScope string
	// Workers is the number of worker processes of the generation (0 when
	// unknown, which filters treat as 1). Filters that bound something per
	// process (connection_limit) split their limit by it.
	Workers int
	// HostState is the host-state region shared by every worker process, a
	// *hoststate.Region (typed any, as Clusters), or nil. Filters whose
	// limits are global across workers (local_ratelimit) take their token
	// buckets from it.
	HostState any
}

// Config is a filter's decoded configuration. Build validates it and returns
// the factory: a *Config that fails here never reaches a worker. Build must
// be free of side effects when ctx.DryRun is set. Errors should name the
// offending key (see FieldError).
type Config interface {
	Build(ctx *BuildContext) (any, error)
}

// Info describes one registered filter.
type Info struct {
	// Name is the dotted name, "sluice.filters.<kind>.<name>".
	Name string
	// Kind is the filter kind.
	Kind Kind
	// New returns a pointer to a zero config with defaults applied; it must
	// have no side effects.
	New func() Config
	// Terminal marks filters that must be last in their chain (the router,
	// the HTTP connection manager, tcp_proxy).
	Terminal bool
	// NewPerRoute, for an HTTP filter that has per-route settings, returns
	// a pointer to a zero per-route config with defaults applied; it must
	// have no side effects. The config loader decodes each
	// typed_per_filter_config table naming the filter (on a route, a
	// virtual host or a route table) strictly into it and calls its
	// Validate; the generation builder calls BuildPerRoute once per
	// generation. Nil: the filter has no per-route settings, and a
	// typed_per_filter_config table naming it is an error.
	NewPerRoute func() PerRouteConfig
}

// PerRouteConfig is a filter's decoded per-route (or per-virtual-host, or
// per-route-table) config: Envoy's typed_per_filter_config. The filter
// finds the built value of the most specific one for a stream with
// httpfilter.Route.PerFilterConfig.
type PerRouteConfig interface {
	// Validate checks the decoded table when the config is loaded; errors
	// should name the offending key (see FieldError). It must have no side
	// effects.
	Validate() error
	// BuildPerRoute returns the value the filter looks up per stream. It
	// is called once per generation and table (a value set on a virtual
	// host is built once and shared by its routes); the value must be
	// immutable (but for counters) and safe for concurrent use. ctx.Path
	// is the key path of the per-filter table; ctx.StatScope is empty (a
	// route table may serve several connection managers), so counters
	// of the connection manager's scope belong to the filter's own
	// factory, not to the per-route value. Like Config.Build it must be
	// free of side effects when ctx.DryRun is set.
	BuildPerRoute(ctx *BuildContext) (any, error)
}

// PerRouteMerger is implemented by built per-route values that combine
// with a less specific level's value of the same filter instead of
// replacing it, as Envoy merges some filters' per-route configs (ext_authz's
// context_extensions: a virtual host's keys stay unless the route sets
// them). The route table calls MergePerRoute on the more specific value with
// the less specific one (route over virtual host, the result over the route
// table) once per route when it is built; the result must be a new value:
// neither input may be modified, as both are shared.
type PerRouteMerger interface {
	MergePerRoute(lessSpecific any) any
}

// FieldError is a config error about one key of a filter's table. Key is
// relative to the table, dotted ("timeout", "retry.max").
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Errorf returns a FieldError for key.
func Errorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Within returns err as an error for the table at key: a FieldError for a
// key within that table gets key as its prefix, any other error is
// reported against key itself.
func Within(key string, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return &FieldError{Key: key, Err: err}
	}
	if fe.Key != "" {
		key += "." + fe.Key
	}
	return &FieldError{Key: key, Err: fe.Err}
}

var (
	nameRE = regexp.MustCompile(`^sluice\.filters\.(listener|network|http)\.[a-z0-9_]+$`)
	byName = map[string]*Info{}
)

// Register adds a filter. It panics on an invalid or duplicate name or a nil
// New, which are programming errors; call it only from init().
func Register(info Info) {
	m := nameRE.FindStringSubmatch(info.Name)
	if m == nil {
		panic(fmt.Sprintf("registry: invalid filter name %q", info.Name))
	}
	if Kind(m[1]) != info.Kind {
		panic(fmt.Sprintf("registry: filter %q registered as kind %q", info.Name, info.Kind))
	}
	if info.New == nil {
		panic(fmt.Sprintf("registry: filter %q has no New", info.Name))
	}
	if _, dup := byName[info.Name]; dup {
		panic(fmt.Sprintf("registry: filter %q registered twice", info.Name))
	}
	c := info
	byName[info.Name] = &c
}

// Lookup returns the filter registered under name.
func Lookup(name string) (*Info, bool) {
	i, ok := byName[name]
	return i, ok
}

// Names returns the registered names of kind k, sorted.
func Names(k Kind) []string {
	var out []string
	for n, i := range byName {
		if i.Kind == k {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Interface guards of the factory kinds Build may return.
var (
	_ = (httpfilter.Factory)(nil)
	_ = (netfilter.Factory)(nil)
	_ = (netfilter.ListenerFilterFactory)(nil)
)
