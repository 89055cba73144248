// Package config holds sluice's TOML configuration: the schema, its defaults,
// strict loading (an unknown key is an error naming file, line and key path),
// and validation. A loaded *Config is an immutable snapshot: nothing modifies
// it after Load returns, so generations share it freely.
package config

import (
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/internal/headermatch"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Config is one configuration file, loaded and validated.
type Config struct {
	Server       Server        `toml:"server"`
	Admin        Admin         `toml:"admin"`
	Statsd       Statsd        `toml:"statsd"`
	Log          Log           `toml:"log"`
	Listeners    []Listener    `toml:"listener"`
	RouteConfigs []RouteConfig `toml:"route_config"`
	Clusters     []Cluster     `toml:"cluster"`
	// Plugins are the out-of-process plugins the supervisor runs (see
	// plugins.go).
	Plugins []plugin.Config `toml:"plugin"`

	// Path is the file the config was loaded from; Source its bytes.
	Path   string `toml:"-"`
	Source []byte `toml:"-" json:"-"` // never in /config_dump: the file holds every secret in clear
	// lines maps key paths to line numbers (see Line).
	lines map[string]int
}

// Server holds process-wide settings.
type Server struct {
	// Workers is the number of worker processes; 0 means one per CPU.
	Workers int `toml:"workers"`
	// GoMaxProcs is GOMAXPROCS for each worker. Default 1.
	GoMaxProcs int `toml:"gomaxprocs"`
	// DrainTimeout bounds how long draining connections may run. Default 600s.
	DrainTimeout Duration `toml:"drain_timeout"`
	// DrainStrategy is "gradual" (default) or "immediate": how connections
	// that cannot move to the next generation (TLS, HTTP/2) are asked to
	// close — each response with a probability growing to 1 at half the
	// drain timeout, or every response at once.
	DrainStrategy string `toml:"drain_strategy"`
	// DrainJitter spreads the closes of a drain: idle connections that
	// cannot move close at a random point within it, and those still open
	// near drain_timeout close over its last DrainJitter. Default 5s; it
	// may not exceed drain_timeout.
	DrainJitter Duration `toml:"drain_jitter"`
	// TicketKeyRotation is how often the supervisor makes a new TLS
	// session ticket key and sends the keys to every running worker.
	// Default 1h.
	TicketKeyRotation Duration `toml:"ticket_key_rotation"`
	// ControlSocket is the path of the control socket used by sluice
	// reload/upgrade. Default "$RUNTIME_DIRECTORY/control.sock", else
	// "/run/sluice/control.sock".
	ControlSocket string `toml:"control_socket"`
}

// Admin configures the admin API listener, served by the supervisor.
type Admin struct {
	// Address is host:port; empty disables the admin API. It must be a
	// loopback address unless AllowNonLoopback is set.
	Address          string `toml:"address"`
	AllowNonLoopback bool   `toml:"allow_non_loopback"`
}

// Log configures sluice's own logs (not access logs).
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `toml:"level"`
	// Format is json (default) or console.
	Format string `toml:"format"`
}

// Listener is one listening address and how its connections are served.
type Listener struct {
	Name    string `toml:"name"`
	Address string `toml:"address"` // host:port; port 0 picks a free port
	// Protocol is "tcp" (default) or "udp". A udp listener serves HTTP/3
	// over QUIC: one filter chain with a tls table whose only filter is the
	// HTTP connection manager.
	Protocol string `toml:"protocol"`
	// ReusePort: one SO_REUSEPORT socket per worker (default true) or one
	// socket shared by all workers.
	ReusePort *bool `toml:"reuse_port"`
	// Backlog is the listen(2) backlog; 0 means net.core.somaxconn.
	Backlog int `toml:"backlog"`
	// PerConnectionBufferLimitBytes bounds what is buffered per connection
	// and direction. Default 1 MiB.
	PerConnectionBufferLimitBytes int `toml:"per_connection_buffer_limit_bytes"`
	// ListenerFiltersTimeout bounds the listener filter chain. Default
	// 15s; "0s" disables it (Envoy's listener_filters_timeout).
	ListenerFiltersTimeout Duration `toml:"listener_filters_timeout"`
	// ContinueOnListenerFiltersTimeout makes a connection whose listener
	// filters ran out of time go on to filter chain matching with what
	// they found, instead of closing (Envoy's
	// continue_on_listener_filters_timeout): for protocols in which the
	// server speaks first.
	ContinueOnListenerFiltersTimeout bool `toml:"continue_on_listener_filters_timeout"`
	// BindToPort (default true): false makes a virtual listener that owns
	// no socket and only serves connections a use_original_dst listener
	// hands it (Envoy's bind_to_port).
	BindToPort *bool `toml:"bind_to_port"`
	// UseOriginalDst hands each connection whose local address a listener
	// filter restored (original_dst, PROXY protocol) to the bind_to_port =
	// false listener of that address (exact ip:port, else the wildcard
	// address of its port); without one the connection stays here.
	UseOriginalDst bool `toml:"use_original_dst"`

	ListenerFilters []Filter      `toml:"listener_filter"`
	FilterChains    []FilterChain `toml:"filter_chain"`
}

// UDP reports whether the listener is a udp (HTTP/3) listener.
func (l *Listener) UDP() bool { return l.Protocol == "udp" }

// Bound reports whether the listener owns a socket (bind_to_port).
func (l *Listener) Bound() bool { return l.BindToPort == nil || *l.BindToPort }

// ReusePortEnabled reports the effective reuse_port setting.
func (l *Listener) ReusePortEnabled() bool { return l.ReusePort == nil || *l.ReusePort }

// FilterChain is a list of network filters, the last one terminal, with
// the criteria that select it for a connection and its transport socket.
type FilterChain struct {
	Name string `toml:"name"`
	// Match selects connections for this chain (Envoy's FilterChainMatch);
	// an empty match selects every connection no other chain claims.
	Match FilterChainMatch `toml:"match"`
	// Default marks the chain used when no chain's match selects a
	// connection (Envoy's default_filter_chain). It may not have a match.
	// Without one, an unmatched connection is closed.
	Default bool `toml:"default"`
	// TLS terminates TLS on the chain's connections.
	TLS     *TLSContext `toml:"tls"`
	Filters []Filter    `toml:"filter"`
}

// FilterChainMatch holds Envoy's filter-chain criteria, evaluated in this
// order; at each one, the chains that match most specifically are kept,
// and chains that leave it unset are kept only when none matches.
type FilterChainMatch struct {
	DestinationPort int `toml:"destination_port"`
	// PrefixRanges are destination CIDRs ("10.0.0.0/8", "::1/128").
	PrefixRanges []string `toml:"prefix_ranges"`
	// ServerNames match the SNI: exact ("a.example.com") beats the longest
	// wildcard ("*.example.com" beats "*.com").
	ServerNames []string `toml:"server_names"`
	// TransportProtocol is "raw_buffer" or "tls" (as the tls_inspector sets).
	TransportProtocol string `toml:"transport_protocol"`
	// ApplicationProtocols match any ALPN value the client offered; when
	// chains name different offered values, those naming the value the
	// client lists first are kept (Envoy's order).
	ApplicationProtocols []string `toml:"application_protocols"`
	// SourceType is "any" (default), "local" or "external".
	SourceType         string   `toml:"source_type"`
	SourcePrefixRanges []string `toml:"source_prefix_ranges"`
	SourcePorts        []int    `toml:"source_ports"`
}

// TLSContext is a downstream TLS transport socket (Envoy's
// DownstreamTlsContext).
type TLSContext struct {
	// Certificates are chosen by SNI (and key type): one naming the SNI
	// exactly, else one whose wildcard covers it, else the first.
	Certificates []TLSCertificate `toml:"certificate"`
	// ALPN protocols offered; default ["h2", "http/1.1"] when the chain ends
	// in the HTTP connection manager, else none.
	ALPN []string `toml:"alpn"`
	// MinVersion and MaxVersion are "1.2" or "1.3" (default 1.2 and 1.3).
	MinVersion   string   `toml:"min_version"`
	MaxVersion   string   `toml:"max_version"`
	CipherSuites []string `toml:"cipher_suites"` // TLS 1.2 suites by IANA name
	Curves       []string `toml:"curves"`        // X25519, P256, P384, P521, X25519MLKEM768
	// RequireClientCertificate turns on mTLS; CAFile verifies client
	// certificates; MatchSubjectAltNames restricts them (both need
	// CAFile).
	RequireClientCertificate bool     `toml:"require_client_certificate"`
	CAFile                   string   `toml:"ca_file"`
	MatchSubjectAltNames     []string `toml:"match_subject_alt_names"`
	// SessionTickets enables resumption with keys shared by every worker
	// and generation (default true).
	SessionTickets *bool `toml:"session_tickets"`
	// HandshakeTimeout bounds the TLS handshake (default 10s).
	HandshakeTimeout Duration `toml:"handshake_timeout"`
}

// TLSCertificate is one certificate chain and its key, in PEM files.
type TLSCertificate struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// OCSPStapleFile holds a DER OCSP response to staple.
	OCSPStapleFile string `toml:"ocsp_staple_file"`
}

// Filter is one filter of a chain: a registered dotted name and its config
// table, decoded strictly into the type the filter registered.
type Filter struct {
	Name   string         `toml:"name"`
	Config toml.Primitive `toml:"config"`

	// Decoded is the filter's config, set by Load.
	Decoded registry.Config `toml:"-"`
	// Path is the key path of this filter's table, e.g.
	// "listener[0].filter_chain[0].filter[1]", set by Load.
	Path string `toml:"-"`
}

// NestedFilters is implemented by filter configs that hold a chain of other
// filters (the HTTP connection manager's http_filter list), so that Load can
// decode them too.
type NestedFilters interface {
	// Nested returns the kind of the nested filters, the key under which they
	// sit in the filter's table, and the slice itself (Load sets Decoded and
	// Path on its elements).
	Nested() (kind registry.Kind, key string, filters []Filter)
}

// RouteConfig is a named route table: virtual hosts and their routes.
type RouteConfig struct {
	Name         string        `toml:"name"`
	VirtualHosts []VirtualHost `toml:"virtual_host"`
	HeaderMutations
	PerFilterConfigs
}

// PerFilterConfigs are the per-filter settings of a route table, virtual
// host or route (Envoy's typed_per_filter_config): one table per HTTP filter
// name, decoded strictly into the type the filter registered
// (registry.Info.NewPerRoute). For each filter, a route's table replaces its
// virtual host's, which replaces its route table's (unless the filter's
// built values merge: registry.PerRouteMerger); the filter reads the one
// that applies with httpfilter.Route.PerFilterConfig.
type PerFilterConfigs struct {
	// TypedPerFilterConfig holds each table raw until Load knows its
	// filter's name.
	TypedPerFilterConfig map[string]toml.Primitive `toml:"typed_per_filter_config"`
	// PerFilter are the decoded tables, sorted by filter name; set by Load.
	PerFilter []PerFilterConfig `toml:"-"`
}

// PerFilterConfig is one decoded typed_per_filter_config table.
type PerFilterConfig struct {
	// Name is the HTTP filter's registered dotted name.
	Name string
	// Config is the decoded and validated table.
	Config registry.PerRouteConfig
	// Path is the key path of the table, the filter name quoted, e.g.
	// `route_config[0].virtual_host[1].typed_per_filter_config."sluice.filters.http.cors"`.
	Path string
}

// HeaderMutations are the headers a route table, virtual host or route adds
// to and removes from the requests it sends upstream and the responses it
// sends downstream (Envoy's request_headers_to_add and its three
// siblings). Removals run before additions; the route's mutations run
// first, then its virtual host's, then its route table's.
type HeaderMutations struct {
	RequestHeadersToAdd     []HeaderValueOption `toml:"request_headers_to_add"`
	RequestHeadersToRemove  []string            `toml:"request_headers_to_remove"`
	ResponseHeadersToAdd    []HeaderValueOption `toml:"response_headers_to_add"`
	ResponseHeadersToRemove []string            `toml:"response_headers_to_remove"`
}

// HeaderValueOption is one header to add. Value may hold the access log's
// command operators (%DOWNSTREAM_REMOTE_ADDRESS%, %REQ(x)%, ...); "%%" is
// a literal '%'. A value that formats to nothing is not added unless
// KeepEmptyValue.
type HeaderValueOption struct {
	Key   string `toml:"key"`
	Value string `toml:"value"`
	// AppendAction is "append_if_exists_or_add" (default: one more field),
	// "add_if_absent", "overwrite_if_exists_or_add" or
	// "overwrite_if_exists".
	AppendAction   string `toml:"append_action"`
	KeepEmptyValue bool   `toml:"keep_empty_value"`
}

// VirtualHost groups routes under a set of domains.
type VirtualHost struct {
	Name string `toml:"name"`
	// Domains match the request authority (port ignored unless given):
	// exact "a.example.com", suffix "*.example.com", prefix "a.example.*",
	// or "*". The most specific wins, as in Envoy.
	Domains []string `toml:"domains"`
	Routes  []Route  `toml:"route"`
	HeaderMutations
	PerFilterConfigs
}

// Route matches requests and says what to do with them.
type Route struct {
	Name  string     `toml:"name"`
	Match RouteMatch `toml:"match"`

	// Exactly one action: Cluster, WeightedClusters, DirectResponse or
	// Redirect.
	Cluster string `toml:"cluster"`
	// WeightedClusters splits the route's requests over clusters, each
	// picked with probability weight / sum of weights (Envoy's
	// weighted_clusters).
	WeightedClusters []RouteWeightedCluster `toml:"weighted_clusters"`
	DirectResponse   *DirectResponse        `toml:"direct_response"`
	Redirect         *Redirect              `toml:"redirect"`

	// PrefixRewrite replaces the matched prefix (prefix routes only).
	PrefixRewrite string `toml:"prefix_rewrite"`
	// RegexRewrite rewrites the path (not the query) sent upstream: every
	// match of its pattern is replaced by its substitution (Envoy's
	// regex_rewrite). Only one of PrefixRewrite and RegexRewrite is set.
	// Either puts the original path in x-envoy-original-path.
	RegexRewrite *RegexRewrite `toml:"regex_rewrite"`
	// HostRewrite replaces the authority sent upstream.
	HostRewrite string `toml:"host_rewrite"`
	// AutoHostRewrite replaces the authority sent upstream with the
	// picked host's name: the endpoint as configured for strict_dns and
	// logical_dns clusters, its address for static ones. Exclusive with
	// HostRewrite.
	AutoHostRewrite bool `toml:"auto_host_rewrite"`
	// Timeout is the route timeout; default 15s; 0s disables it.
	Timeout *Duration `toml:"timeout"`
	// DisabledFilters lists HTTP filters (dotted names) that do not run
	// for this route.
	DisabledFilters []string `toml:"disabled_filters"`
	// HashPolicy computes the request hash for ring_hash and maglev
	// clusters; without one, such a cluster picks at random.
	HashPolicy []HashPolicy `toml:"hash_policy"`
	// RetryPolicy retries failed upstream requests; nil: no retries
	// besides resending an idempotent request whose reused connection was
	// found closed.
	RetryPolicy *RetryPolicy `toml:"retry_policy"`
	// MaxStreamDuration holds how a gRPC request's grpc-timeout header
	// sets its route timeout (Envoy's route max_stream_duration); nil:
	// grpc-timeout is not looked at.
	MaxStreamDuration *MaxStreamDuration `toml:"max_stream_duration"`
	// RequestMirrorPolicies send a copy of each request to other clusters.
	RequestMirrorPolicies []RequestMirrorPolicy `toml:"request_mirror_policies"`
	// Decorator names the trace spans of the route's requests (Envoy's
	// route decorator); only with a manager that traces.
	Decorator *Decorator `toml:"decorator"`
	// Upgrade lists the connection upgrades the route allows (Envoy's
	// upgrade_configs): "websocket" (an HTTP/1.1 Upgrade, tunnelled after
	// the upstream's 101) and "CONNECT" (terminated: sluice connects to
	// the cluster and tunnels raw bytes). An upgrade the route does not
	// list is answered 403.
	Upgrade []string `toml:"upgrade"`
	// Priority is the route's routing priority, "default" or "high"
	// (Envoy's RoutingPriority): which circuit-breaker thresholds of the
	// cluster its requests count against.
	Priority string `toml:"priority"`
	HeaderMutations
	PerFilterConfigs
}

// RouteWeightedCluster is one entry of a route's weighted_clusters. Its
// header mutations run before the route's.
type RouteWeightedCluster struct {
	Name string `toml:"name"`
	// Weight is the cluster's share; 0 sends it nothing.
	Weight int `toml:"weight"`
	HeaderMutations
}

// MaxRouteClusterWeight bounds one weight of weighted_clusters, so that
// their sum cannot overflow.
const MaxRouteClusterWeight = 1 << 20

// RouteMatch selects requests. Exactly one of Path, Prefix and Regex is set.
type RouteMatch struct {
	Path   string `toml:"path"`   // exact path (query excluded)
	Prefix string `toml:"prefix"` // path prefix
	Regex  string `toml:"regex"`  // RE2 matched against the whole path
	// CaseSensitive (default true): false compares Path and Prefix with
	// ASCII letters folded (not Regex, which has (?i) for that).
	CaseSensitive *bool           `toml:"case_sensitive"`
	Headers       []HeaderMatcher `toml:"headers"`
	// QueryParameters must all match the request's query string.
	QueryParameters []QueryParameterMatcher `toml:"query_parameters"`
}

// QueryParameterMatcher matches the first parameter of the request's query
// string named Name (Envoy's QueryParameterMatcher). Names and values are
// compared as the request spells them, percent-encoded, as Envoy does; a
// parameter without "=" has the empty value. With none of Exact, Prefix,
// Suffix, Contains, Regex and Present set it matches when the parameter
// is present.
type QueryParameterMatcher struct {
	Name     string `toml:"name"`
	Exact    string `toml:"exact"`
	Prefix   string `toml:"prefix"`
	Suffix   string `toml:"suffix"`
	Contains string `toml:"contains"`
	// Regex is RE2 matched against the whole value.
	Regex string `toml:"regex"`
	// Present true matches when the parameter is present (with or without
	// a value), false when it is absent.
	Present *bool `toml:"present"`
	// IgnoreCase folds ASCII letters for Exact, Prefix, Suffix and
	// Contains.
	IgnoreCase bool `toml:"ignore_case"`
}

// RegexRewrite is a pattern and its substitution (Envoy's
// RegexMatchAndSubstitute). Substitution may refer to the pattern's
// capture groups as \0 (the whole match) to \9; "\\" is a backslash.
type RegexRewrite struct {
	Pattern      string `toml:"pattern"`
	Substitution string `toml:"substitution"`
}

// Decorator is Envoy's route decorator: Operation is the trace span's
// name for the route's requests; with Propagate (default true) it travels
// as x-envoy-decorator-operation (on the response of an ingress manager,
// on the request of an egress one).
type Decorator struct {
	Operation string `toml:"operation"`
	Propagate *bool  `toml:"propagate"`
}

// HeaderMatcher matches one request header (see headermatch.Config).
type HeaderMatcher = headermatch.Config

// DirectResponse answers locally.
type DirectResponse struct {
	Status int    `toml:"status"`
	Body   string `toml:"body"`
}

// Redirect answers with a redirect.
type Redirect struct {
	// Status is 301 (default), 302, 303, 307 or 308.
	Status int `toml:"status"`
	// Each non-empty part replaces that part of the request URL.
	Scheme string `toml:"scheme"`
	Host   string `toml:"host"`
	Path   string `toml:"path"`
	// HTTPSRedirect is shorthand for Scheme = "https".
	HTTPSRedirect bool `toml:"https_redirect"`
	// Port replaces the port of the request's authority (Envoy's
	// port_redirect); 0 keeps it.
	Port int `toml:"port"`
	// PrefixRewrite replaces the matched prefix of the path (prefix
	// routes only); RegexRewrite rewrites the path as a route's
	// regex_rewrite does. At most one of Path, PrefixRewrite and
	// RegexRewrite is set; the latter two keep the query.
	PrefixRewrite string        `toml:"prefix_rewrite"`
	RegexRewrite  *RegexRewrite `toml:"regex_rewrite"`
	// StripQuery drops the request's query from the location (a query
	// written in Path stays).
	StripQuery bool `toml:"strip_query"`
}

// Cluster is a named group of upstream hosts.
type Cluster struct {
	Name string `toml:"name"`
	// Type is "static" (default), "strict_dns" (every address of every
	// endpoint's name), "logical_dns" (the first address of its single
	// endpoint's name) or "original_dst" (each connection goes to its
	// downstream connection's original destination; no endpoints). DNS
	// clusters are resolved by the supervisor.
	Type string `toml:"type"`
	// CleanupInterval, for an original_dst cluster, removes hosts unused
	// for this long (default 5s, Envoy's).
	CleanupInterval Duration `toml:"cleanup_interval"`
	// UseHTTPHeader, for an original_dst cluster, takes an HTTP request's
	// destination from its x-envoy-original-dst-host header ("ip:port")
	// when present.
	UseHTTPHeader bool `toml:"use_http_header"`
	// Endpoints are host:port addresses.
	Endpoints []string `toml:"endpoints"`
	// EndpointWeights, for a static cluster, weigh its endpoints for the
	// weighted policies (round robin, least request, ring hash, maglev):
	// one weight per endpoint, 1..128 (Envoy's load_balancing_weight).
	// Default: all 1.
	EndpointWeights []uint32 `toml:"endpoint_weights"`
	// DNSRefreshRate is how often a DNS cluster is re-resolved (default 5s).
	DNSRefreshRate Duration `toml:"dns_refresh_rate"`
	// RespectDNSTTL re-resolves a DNS cluster at its records' TTL instead.
	RespectDNSTTL bool `toml:"respect_dns_ttl"`
	// DNSResolvers are the "ip:port" servers a DNS cluster is resolved
	// with; default: the nameservers of /etc/resolv.conf.
	DNSResolvers []string `toml:"dns_resolvers"`
	// ConnectTimeout bounds connecting to a host. Default 5s.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// LBPolicy is round_robin (default), least_request, random, ring_hash
	// or maglev (see docs/load_balancing.md); cluster_provided, the
	// default and only policy of an original_dst cluster.
	LBPolicy string `toml:"lb_policy"`
	// PanicThreshold is the percentage of healthy hosts below which all
	// hosts are used (default 50; 0 disables).
	PanicThreshold *float64           `toml:"panic_threshold"`
	RingHash       RingHashConfig     `toml:"ring_hash"`
	Maglev         MaglevConfig       `toml:"maglev"`
	LeastRequest   LeastRequestConfig `toml:"least_request"`
	SlowStart      SlowStartConfig    `toml:"slow_start"`
	// MaxIdleConnections per host and worker. Default 64.
	MaxIdleConnections int `toml:"max_idle_connections"`
	// IdleTimeout closes pooled connections idle this long. Default 60s.
	IdleTimeout Duration `toml:"idle_timeout"`
	// PerConnectionBufferLimitBytes as for listeners. Default 1 MiB.
	PerConnectionBufferLimitBytes int `toml:"per_connection_buffer_limit_bytes"`
	// TLS originates TLS to the cluster's hosts.
	TLS *UpstreamTLSContext `toml:"tls"`
	// Protocol is what sluice speaks to the hosts: "http1" (default),
	// "http2" (h2 by ALPN over TLS, h2c prior knowledge without) or "auto"
	// (HTTP/2 when the TLS handshake selects h2, else HTTP/1.1).
	Protocol string `toml:"protocol"`
	// MaxRequestsPerConnection retires an upstream connection after this
	// many requests (default 0: unlimited).
	MaxRequestsPerConnection int `toml:"max_requests_per_connection"`
	// MaxConnectionDuration retires an upstream connection this long after
	// it was opened: it takes no new request and closes once idle (default
	// 0: never).
	MaxConnectionDuration Duration `toml:"max_connection_duration"`
	// HealthChecks are the cluster's active health checks, run once by the
	// supervisor; at most one. Without one every host is healthy unless
	// outlier detection ejects it.
	HealthChecks []HealthCheckConfig `toml:"health_check"`
	// OutlierDetection enables passive health checking; nil disables it.
	OutlierDetection *OutlierConfig `toml:"outlier_detection"`
	// CircuitBreakers are the cluster's global limits.
	CircuitBreakers CircuitBreakersConfig `toml:"circuit_breakers"`
}

// UpstreamTLSContext is TLS towards a cluster's hosts (Envoy's
// UpstreamTlsContext).
type UpstreamTLSContext struct {
	// SNI is the server name sent; default: the host part of the endpoint.
	SNI string `toml:"sni"`
	// AutoSNI sends as SNI the host of the request's :authority (Host),
	// without its port, instead of SNI (Envoy's auto_sni); a request without
	// one uses SNI. Connections are pooled per server name.
	AutoSNI bool `toml:"auto_sni"`
	// AutoSANValidation checks that the host's certificate has a subject
	// alternative name matching the server name sent (Envoy's
	// auto_san_validation), also when insecure_skip_verify skips the chain.
	AutoSANValidation bool `toml:"auto_san_validation"`
	// CAFile verifies the hosts' certificates; without it the system roots
	// do, unless InsecureSkipVerify is set.
	CAFile               string   `toml:"ca_file"`
	MatchSubjectAltNames []string `toml:"match_subject_alt_names"`
	InsecureSkipVerify   bool     `toml:"insecure_skip_verify"`
	// CertFile and KeyFile are a client certificate for mTLS.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ALPN protocols offered (default none: HTTP/1.1).
	ALPN       []string `toml:"alpn"`
	MinVersion string   `toml:"min_version"`
	MaxVersion string   `toml:"max_version"`
}

// RingHashConfig tunes lb_policy = "ring_hash" (defaults 1024 and 8M).
type RingHashConfig struct {
	MinimumRingSize uint64 `toml:"minimum_ring_size"`
	MaximumRingSize uint64 `toml:"maximum_ring_size"`
}

// MaglevConfig tunes lb_policy = "maglev"; the table size must be prime
// (default 65537).
type MaglevConfig struct {
	TableSize uint64 `toml:"table_size"`
}

// LeastRequestConfig tunes lb_policy = "least_request" (defaults 2 and 1.0).
type LeastRequestConfig struct {
	ChoiceCount       uint32   `toml:"choice_count"`
	ActiveRequestBias *float64 `toml:"active_request_bias"`
}

// SlowStartConfig ramps up new hosts' traffic over Window (0 disables);
// Aggression defaults to 1.0, MinWeightPercent to 10.
type SlowStartConfig struct {
	Window           Duration `toml:"window"`
	Aggression       float64  `toml:"aggression"`
	MinWeightPercent *float64 `toml:"min_weight_percent"`
}

// HashPolicy is one source of a request's hash for ring_hash and maglev
// clusters (Envoy's hash_policy); exactly one of its sources is set.
type HashPolicy struct {
	Header         string `toml:"header"`
	Cookie         string `toml:"cookie"`
	SourceIP       bool   `toml:"source_ip"`
	QueryParameter string `toml:"query_parameter"`
	// Terminal stops evaluating further policies once this one produced
	// a hash.
	Terminal bool `toml:"terminal"`
}

// Duration is a time.Duration written in TOML as a Go duration string
// ("15s", "250ms").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }
