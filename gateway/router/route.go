package router

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/headermatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Table is a built route_config: virtual hosts indexed for authority
// matching. It is immutable and safe for concurrent use.
type Table struct {
	name     string
	exact    map[string]*virtualHost
	suffixes []wildcard // "*.example.com", longest first
	prefixes []wildcard // "www.example.*", longest first
	any      *virtualHost
}

type wildcard struct {
	s  string // without the '*'
	vh *virtualHost
}

type virtualHost struct {
	name   string
	routes []*Route
}

// Route is one built route. It implements httpfilter.Route.
type Route struct {
	name   string
	path   string
	prefix string
	regex  *regexp.Regexp
	// foldCase: path or prefix is compared with ASCII letters folded
	// (case_sensitive = false).
	foldCase bool
	headers  []headermatch.Matcher
	query    []queryMatcher
	disabled []string
	// decorator is the trace span name of the route's requests
	// (config.Decorator), "" without one.
	decorator          string
	decoratorPropagate bool

	// Cluster is the target cluster (nil for weighted clusters, direct
	// responses and redirects).
	Cluster *cluster.Cluster
	// weighted are the route's weighted clusters, each with its cumulative
	// weight; a request goes to the first whose cum exceeds a random draw
	// below the last cum.
	weighted       []weightedCluster
	DirectResponse *config.DirectResponse
	Redirect       *config.Redirect
	PrefixRewrite  string
	// hostRewrite is host_rewrite as set on requests (capacity clipped:
	// shared by every request of the route).
	hostRewrite []byte
	// autoHost sets the authority to the picked host's name.
	autoHost bool
	// regexRewrite and regexTmpl are the route's regex_rewrite (nil
	// without one); redirectRegex and redirectTmpl its redirect's.
	regexRewrite, redirectRegex *regexp.Regexp
	regexTmpl, redirectTmpl     []byte
	// pathRewrite: the route rewrites the path (prefix_rewrite or
	// regex_rewrite), and so sets x-envoy-original-path.
	pathRewrite bool
	// Timeout is the route timeout; 0 disables it.
	Timeout time.Duration
	// expectedMs is x-envoy-expected-rq-timeout-ms's value for
	// expectedFor, formatted when the route is built.
	expectedMs  []byte
	expectedFor time.Duration
	// Hasher computes the request hash for ring_hash and maglev clusters;
	// nil without a hash_policy.
	Hasher *Hasher
	// Retry is the route's retry policy; nil without one.
	Retry *RetryPolicy
	// defaultRetry is the policy of a request whose x-envoy-retry-on or
	// x-envoy-retry-grpc-on asks for retries on a route without one:
	// Envoy's defaults (one retry, no conditions until the request's).
	defaultRetry *RetryPolicy
	// grpcTimeout: a gRPC request's grpc-timeout sets its route timeout
	// (max_stream_duration.grpc_timeout_header_max), capped by grpcMax
	// (0: no cap), less grpcOffset.
	grpcTimeout         bool
	grpcMax, grpcOffset time.Duration
	// Mirrors are the route's request mirror policies.
	Mirrors []Mirror
	// Upgrades are the upgrades the route allows ("websocket", "CONNECT").
	Upgrades []string
	// Priority selects the cluster's circuit-breaker thresholds its
	// requests count against.
	Priority hoststate.Priority
	// mutations are the header mutations of the route, its virtual host
	// and its table, in the order they apply; nil when none has any.
	mutations []*headerMutations
	// perFilter are the built per-filter configs that apply to the route,
	// one per filter name: the route's own, else its virtual host's, else
	// its table's; nil when none of them has any.
	perFilter []perFilterEntry
}

// perFilterEntry is one filter's built typed_per_filter_config.
type perFilterEntry struct {
	name string
	cfg  any
}

// PerFilterBuilder builds one typed_per_filter_config table of a route
// table (calling its BuildPerRoute with the generation's build context).
// NewTableWith calls it once per table, so that a virtual host's value is
// shared by its routes.
type PerFilterBuilder func(pf *config.PerFilterConfig) (any, error)

// buildPerFilter builds the per-filter tables pfs with build.
func buildPerFilter(pfs []config.PerFilterConfig, build PerFilterBuilder) ([]perFilterEntry, error) {
	var out []perFilterEntry
	for i := range pfs {
		v, err := build(&pfs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, perFilterEntry{name: pfs[i].Name, cfg: v})
	}
	return out, nil
}

// mergePerFilter returns the entries of levels, most specific first, with
// one entry per filter name: the first level's that has one, or, when that
// value is a registry.PerRouteMerger, what it makes of the less specific
// levels' values (Envoy's per-filter config merge).
func mergePerFilter(levels ...[]perFilterEntry) []perFilterEntry {
	var out []perFilterEntry
	for k := len(levels) - 1; k >= 0; k-- { // least specific first
		for _, e := range levels[k] {
			i := slices.IndexFunc(out, func(o perFilterEntry) bool { return o.name == e.name })
			switch {
			case i < 0:
				out = append(out, e)
			case isMerger(e.cfg):
				out[i].cfg = e.cfg.(registry.PerRouteMerger).MergePerRoute(out[i].cfg)
			default:
				out[i].cfg = e.cfg
			}
		}
	}
	return slices.Clip(out)
}

func isMerger(v any) bool {
	_, ok := v.(registry.PerRouteMerger)
	return ok
}

// defaultPerFilterBuilder builds with a build context that has only the
// per-filter table's path.
func defaultPerFilterBuilder(pf *config.PerFilterConfig) (any, error) {
	return pf.Config.BuildPerRoute(&registry.BuildContext{Path: pf.Path})
}

// weightedCluster is one cluster of a route's weighted_clusters.
type weightedCluster struct {
	cluster *cluster.Cluster
	cum     uint64
	// own are the entry's header mutations; mutations are own followed by
	// the route's (set by NewTable once the route's are complete).
	own, mutations []*headerMutations
}

// target picks the cluster of one request, and returns it with the header
// mutations that go with it. The cluster is nil for routes that answer
// locally.
func (r *Route) target() (*cluster.Cluster, []*headerMutations) {
	if len(r.weighted) == 0 {
		return r.Cluster, r.mutations
	}
	n := rand.Uint64N(r.weighted[len(r.weighted)-1].cum)
	for i := range r.weighted {
		if w := &r.weighted[i]; n < w.cum {
			return w.cluster, w.mutations
		}
	}
	return nil, nil // unreachable: n < the last cum
}

// Retry conditions, a bit set: Envoy's x-envoy-retry-on values, then its
// x-envoy-retry-grpc-on ones (met by the grpc-status of a response head).
const (
	Retry5xx uint16 = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryGrpcCancelled
	RetryGrpcDeadlineExceeded
	RetryGrpcInternal
	RetryGrpcResourceExhausted
	RetryGrpcUnavailable
)

// retryGrpc are the gRPC retry conditions.
const retryGrpc = RetryGrpcCancelled | RetryGrpcDeadlineExceeded | RetryGrpcInternal |
	RetryGrpcResourceExhausted | RetryGrpcUnavailable

// RetryPolicy is a route's compiled retry policy. It is immutable.
type RetryPolicy struct {
	// On is the set of Retry* conditions.
	On uint16
	// NumRetries is the most retries of one request.
	NumRetries int
	// PerTryTimeout bounds each try's wait for the response head (0: the
	// route timeout only); PerTryIdleTimeout the silence allowed between
	// response bytes of a try: before the response head it fails the try
	// as a per-try timeout (retryable), after it resets the stream.
	PerTryTimeout, PerTryIdleTimeout time.Duration
	// StatusCodes are retried with RetryRetriableStatusCodes.
	StatusCodes []int
	// PreviousHosts makes each retry avoid the hosts already tried.
	PreviousHosts bool
	// BaseInterval and MaxInterval bound the full-jitter exponential
	// backoff between tries.
	BaseInterval, MaxInterval time.Duration
	// BodyLimit is the most request body bytes buffered for a replay; a
	// larger body is streamed and not retried.
	BodyLimit int
}

// retryOnNames maps x-envoy-retry-on values to their bits,
// grpcRetryOnNames x-envoy-retry-grpc-on values; retry_on takes both.
var (
	retryOnNames = map[string]uint16{
		"5xx": Retry5xx, "gateway-error": RetryGatewayError, "reset": RetryReset,
		"connect-failure": RetryConnectFailure, "retriable-4xx": RetryRetriable4xx,
		"refused-stream": RetryRefusedStream, "retriable-status-codes": RetryRetriableStatusCodes,
	}
	grpcRetryOnNames = map[string]uint16{
		"cancelled": RetryGrpcCancelled, "deadline-exceeded": RetryGrpcDeadlineExceeded,
		"internal": RetryGrpcInternal, "resource-exhausted": RetryGrpcResourceExhausted,
		"unavailable": RetryGrpcUnavailable,
	}
)

// routeClusters returns the names of the clusters rc sends requests to.
func routeClusters(rc *config.Route) []string {
	if rc.Cluster != "" {
		return []string{rc.Cluster}
	}
	names := make([]string, 0, len(rc.WeightedClusters))
	for _, wc := range rc.WeightedClusters {
		names = append(names, wc.Name)
	}
	return names
}

// newRetryPolicy compiles rp for a route to the clusters cls: a request
// body is buffered for replays up to the smallest of their buffer limits.
func newRetryPolicy(rp *config.RetryPolicy, cls []*config.Cluster) (*RetryPolicy, error) {
	p := &RetryPolicy{NumRetries: config.DefaultNumRetries, PerTryTimeout: rp.PerTryTimeout.Duration,
		PerTryIdleTimeout: rp.PerTryIdleTimeout.Duration, StatusCodes: rp.RetriableStatusCodes,
		BaseInterval: rp.RetryBackOff.BaseInterval.Duration, MaxInterval: rp.RetryBackOff.MaxInterval.Duration}
	for _, on := range rp.RetryOn {
		b, ok := retryOnNames[on]
		if !ok {
			b, ok = grpcRetryOnNames[on]
		}
		if !ok {
			return nil, fmt.Errorf("retry_policy.retry_on: unsupported condition %q", on)
		}
		p.On |= b
	}
	if rp.NumRetries != nil {
		p.NumRetries = max(*rp.NumRetries, 0)
	}
	for _, h := range rp.RetryHostPredicate {
		p.PreviousHosts = p.PreviousHosts || h == "previous_hosts"
	}
	if p.BaseInterval <= 0 {
		p.BaseInterval = config.DefaultRetryBaseBackoff
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = 10 * p.BaseInterval
	}
	p.MaxInterval = max(p.MaxInterval, p.BaseInterval)
	p.BodyLimit = 0
	for _, cl := range cls {
		if l := cl.PerConnectionBufferLimitBytes; l > 0 && (p.BodyLimit == 0 || l < p.BodyLimit) {
			p.BodyLimit = l
		}
	}
	if p.BodyLimit == 0 {
		p.BodyLimit = config.DefaultBufferLimitBytes
	}
	return p, nil
}

// Name implements httpfilter.Route.
func (r *Route) Name() string { return r.name }

// Decorator returns the route's decorator operation ("" without one) and
// whether it propagates (Envoy's route decorator).
func (r *Route) Decorator() (operation string, propagate bool) {
	return r.decorator, r.decoratorPropagate
}

// ClusterName returns the name of the route's cluster, or "" for a route
// with weighted clusters (picked per request by the router), a direct
// response or a redirect. Filters that match on the upstream cluster (the
// fault filter's upstream_cluster) read it.
func (r *Route) ClusterName() string {
	if r.Cluster == nil {
		return ""
	}
	return r.Cluster.Name
}

// FilterDisabled implements httpfilter.Route.
func (r *Route) FilterDisabled(name string) bool { return slices.Contains(r.disabled, name) }

// PerFilterConfig implements httpfilter.Route: a scan of the few filters
// that have per-filter config on the route, its virtual host or its table.
func (r *Route) PerFilterConfig(name string) any {
	for i := range r.perFilter {
		if r.perFilter[i].name == name {
			return r.perFilter[i].cfg
		}
	}
	return nil
}

// NewTable builds the route table of rc, resolving cluster names in m. Its
// typed_per_filter_config tables are built with a build context that has
// only their paths; the generation builder uses NewTableWith.
func NewTable(rc *config.RouteConfig, m *cluster.Manager) (*Table, error) {
	return NewTableWith(rc, m, nil)
}

// NewTableWith builds the route table of rc, resolving cluster names in m
// and building each typed_per_filter_config table with build (nil: with a
// build context that has only the table's path).
func NewTableWith(rc *config.RouteConfig, m *cluster.Manager, build PerFilterBuilder) (*Table, error) {
	if build == nil {
		build = defaultPerFilterBuilder
	}
	t := &Table{name: rc.Name, exact: map[string]*virtualHost{}}
	tableMu, err := newHeaderMutations(&rc.HeaderMutations)
	if err != nil {
		return nil, fmt.Errorf("route_config %q: %w", rc.Name, err)
	}
	tablePF, err := buildPerFilter(rc.PerFilter, build)
	if err != nil {
		return nil, fmt.Errorf("route_config %q: %w", rc.Name, err)
	}
	for i := range rc.VirtualHosts {
		vc := &rc.VirtualHosts[i]
		vh := &virtualHost{name: vc.Name}
		vhMu, err := newHeaderMutations(&vc.HeaderMutations)
		if err != nil {
			return nil, fmt.Errorf("route_config %q virtual_host %q: %w", rc.Name, vc.Name, err)
		}
		vhPF, err := buildPerFilter(vc.PerFilter, build)
		if err != nil {
			return nil, fmt.Errorf("route_config %q virtual_host %q: %w", rc.Name, vc.Name, err)
		}
		for j := range vc.Routes {
			r, err := newRoute(&vc.Routes[j], m)
			if err != nil {
				return nil, fmt.Errorf("route_config %q virtual_host %q route[%d]: %w", rc.Name, vc.Name, j, err)
			}
			routePF, err := buildPerFilter(vc.Routes[j].PerFilter, build)
			if err != nil {
				return nil, fmt.Errorf("route_config %q virtual_host %q route[%d]: %w", rc.Name, vc.Name, j, err)
			}
			r.perFilter = mergePerFilter(routePF, vhPF, tablePF)
			for _, mu := range []*headerMutations{vhMu, tableMu} {
				if mu != nil {
					r.mutations = append(r.mutations, mu)
				}
			}
			for k := range r.weighted {
				w := &r.weighted[k]
				w.mutations = append(slices.Clip(w.own), r.mutations...)
			}
			vh.routes = append(vh.routes, r)
		}
		for _, d := range vc.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				t.any = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard{d[:len(d)-1], vh})
			default:
				t.exact[d] = vh
			}
		}
	}
	longestFirst := func(a, b wildcard) int { return len(b.s) - len(a.s) }
	slices.SortStableFunc(t.suffixes, longestFirst)
	slices.SortStableFunc(t.prefixes, longestFirst)
	return t, nil
}

func newRoute(rc *config.Route, m *cluster.Manager) (*Route, error) {
	r := &Route{
		name:           rc.Name,
		path:           rc.Match.Path,
		prefix:         rc.Match.Prefix,
		disabled:       rc.DisabledFilters,
		DirectResponse: rc.DirectResponse,
		Redirect:       rc.Redirect,
		PrefixRewrite:  rc.PrefixRewrite,
		autoHost:       rc.AutoHostRewrite,
		Timeout:        15 * time.Second,
		Upgrades:       rc.Upgrade,
		foldCase:       rc.Match.CaseSensitive != nil && !*rc.Match.CaseSensitive && rc.Match.Regex == "",
	}
	if rc.HostRewrite != "" {
		r.hostRewrite = slices.Clip([]byte(rc.HostRewrite))
	}
	if rc.RegexRewrite != nil {
		re, tmpl, err := rc.RegexRewrite.Compile()
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
		r.regexRewrite, r.regexTmpl = re, []byte(tmpl)
	}
	if rd := rc.Redirect; rd != nil && rd.RegexRewrite != nil {
		re, tmpl, err := rd.RegexRewrite.Compile()
		if err != nil {
			return nil, fmt.Errorf("redirect.regex_rewrite: %w", err)
		}
		r.redirectRegex, r.redirectTmpl = re, []byte(tmpl)
	}
	r.pathRewrite = (r.PrefixRewrite != "" && r.prefix != "") || r.regexRewrite != nil
	if strings.EqualFold(rc.Priority, "high") {
		r.Priority = hoststate.PriorityHigh
	}
	mu, err := newHeaderMutations(&rc.HeaderMutations)
	if err != nil {
		return nil, err
	}
	if mu != nil {
		r.mutations = append(r.mutations, mu)
	}
	if rc.Timeout != nil {
		r.Timeout = rc.Timeout.Duration
	}
	var ccs []*config.Cluster
	for _, name := range routeClusters(rc) {
		if c := m.Get(name); c != nil {
			ccs = append(ccs, c.Cfg)
		}
	}
	if rc.RetryPolicy != nil {
		p, err := newRetryPolicy(rc.RetryPolicy, ccs)
		if err != nil {
			return nil, err
		}
		r.Retry = p
	}
	if len(ccs) > 0 {
		r.defaultRetry, _ = newRetryPolicy(&config.RetryPolicy{}, ccs) // no conditions: no error
	}
	if d := rc.Decorator; d != nil {
		r.decorator, r.decoratorPropagate = d.Operation, d.Propagate == nil || *d.Propagate
	}
	if msd := rc.MaxStreamDuration; msd != nil && msd.GrpcTimeoutHeaderMax != nil {
		r.grpcTimeout = true
		r.grpcMax, r.grpcOffset = msd.GrpcTimeoutHeaderMax.Duration, msd.GrpcTimeoutHeaderOffset.Duration
	}
	if r.Timeout > 0 {
		r.expectedMs, r.expectedFor = strconv.AppendInt(nil, r.expectedTimeout().Milliseconds(), 10), r.expectedTimeout()
	}
	if len(rc.RequestMirrorPolicies) > 0 {
		ms, err := newMirrors(rc.RequestMirrorPolicies, m)
		if err != nil {
			return nil, err
		}
		r.Mirrors = ms
	}
	if len(rc.HashPolicy) > 0 {
		hp := make([]HashPolicyConfig, len(rc.HashPolicy))
		for i, p := range rc.HashPolicy {
			hp[i] = HashPolicyConfig(p)
		}
		h, err := NewHasher(hp)
		if err != nil {
			return nil, fmt.Errorf("hash_policy: %w", err)
		}
		r.Hasher = h
	}
	if rc.Match.Regex != "" {
		re, err := regexp.Compile("^(?:" + rc.Match.Regex + ")$")
		if err != nil {
			return nil, fmt.Errorf("match.regex: %w", err)
		}
		r.regex = re
	}
	for i := range rc.Match.Headers {
		m, err := rc.Match.Headers[i].Compile()
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d]: %w", i, err)
		}
		r.headers = append(r.headers, m)
	}
	for i := range rc.Match.QueryParameters {
		qm, err := newQueryMatcher(&rc.Match.QueryParameters[i])
		if err != nil {
			return nil, fmt.Errorf("match.query_parameters[%d]: %w", i, err)
		}
		r.query = append(r.query, qm)
	}
	if rc.Cluster != "" {
		r.Cluster = m.Get(rc.Cluster)
		if r.Cluster == nil {
			return nil, fmt.Errorf("cluster %q does not exist", rc.Cluster)
		}
	}
	var cum uint64
	for i, wc := range rc.WeightedClusters {
		c := m.Get(wc.Name)
		if c == nil {
			return nil, fmt.Errorf("weighted_clusters[%d]: cluster %q does not exist", i, wc.Name)
		}
		if wc.Weight <= 0 {
			continue
		}
		cum += uint64(wc.Weight)
		w := weightedCluster{cluster: c, cum: cum}
		mu, err := newHeaderMutations(&wc.HeaderMutations)
		if err != nil {
			return nil, fmt.Errorf("weighted_clusters[%d]: %w", i, err)
		}
		if mu != nil {
			w.own = []*headerMutations{mu}
		}
		r.weighted = append(r.weighted, w)
	}
	if len(rc.WeightedClusters) > 0 && cum == 0 {
		return nil, fmt.Errorf("weighted_clusters: the weights add up to 0")
	}
	return r, nil
}

// expectedTimeout is what x-envoy-expected-rq-timeout-ms announces: the
// route timeout, or the per-try timeout when shorter.
func (r *Route) expectedTimeout() time.Duration {
	expected := r.Timeout
	if r.Retry != nil && r.Retry.PerTryTimeout > 0 {
		expected = min(expected, r.Retry.PerTryTimeout)
	}
	return expected
}

// expectedTimeoutMs is x-envoy-expected-rq-timeout-ms's value for
// expected, formatted once per route (routes are immutable once built).
func (r *Route) expectedTimeoutMs(expected time.Duration) []byte {
	if r.expectedMs != nil && r.expectedFor == expected {
		return r.expectedMs
	}
	return strconv.AppendInt(nil, expected.Milliseconds(), 10)
}

// Match implements httpfilter.RouteTable: it picks the virtual host by the
// authority and returns its first matching route, or nil.
func (t *Table) Match(h *httpfilter.RequestHeaders) httpfilter.Route {
	vh := t.virtualHost(h.Authority)
	if vh == nil {
		return nil
	}
	path := h.Path
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for _, r := range vh.routes {
		if r.matches(path, h) {
			return r
		}
	}
	return nil
}

func (r *Route) matches(path []byte, h *httpfilter.RequestHeaders) bool {
	switch {
	case r.regex != nil:
		if !r.regex.Match(path) {
			return false
		}
	case r.foldCase:
		if !r.matchesFolded(path) {
			return false
		}
	case r.prefix != "":
		if len(path) < len(r.prefix) || string(path[:len(r.prefix)]) != r.prefix {
			return false
		}
	default:
		if string(path) != r.path {
			return false
		}
	}
	for i := range r.headers {
		if !r.headers[i].Match(h) {
			return false
		}
	}
	if len(r.query) > 0 {
		return r.matchesQuery(h.Path)
	}
	return true
}

// virtualHost picks by authority: exact, then the longest suffix wildcard,
// then the longest prefix wildcard, then "*". The port is ignored unless a
// domain names one.
func (t *Table) virtualHost(authority []byte) *virtualHost {
	var lower [256]byte
	if len(authority) > len(lower) {
		return t.any
	}
	a := lower[:len(authority)]
	for i, c := range authority {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		a[i] = c
	}
	if vh := t.exact[string(a)]; vh != nil {
		return vh
	}
	if i := bytes.LastIndexByte(a, ':'); i >= 0 && bytes.IndexByte(a[i:], ']') < 0 {
		a = a[:i]
		if vh := t.exact[string(a)]; vh != nil {
			return vh
		}
	}
	for _, w := range t.suffixes {
		if len(a) > len(w.s) && string(a[len(a)-len(w.s):]) == w.s {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(a) > len(w.s) && string(a[:len(w.s)]) == w.s {
			return w.vh
		}
	}
	return t.any
}
