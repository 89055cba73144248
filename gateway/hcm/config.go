package hcm

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/internal/pathnorm"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tracing"
)

// Name is the HTTP connection manager's registered filter name.
const Name = "sluice.filters.network.http_connection_manager"

func init() {
	registry.Register(registry.Info{
		Name:     Name,
		Kind:     registry.Network,
		Terminal: true,
		New:      func() registry.Config { return &Config{} },
	})
}

// Config is the HTTP connection manager's TOML table.
type Config struct {
	// StatPrefix names the manager's stats (http.<stat_prefix>.*). Required.
	StatPrefix string `toml:"stat_prefix"`
	// RouteConfig names the [[route_config]] this manager routes with. Required.
	RouteConfig string `toml:"route_config"`
	// CodecType is "auto" (default: HTTP/2 by ALPN h2 on TLS or by the h2c
	// prior-knowledge preface on plaintext, else HTTP/1.1), "http1" or
	// "http2".
	CodecType string `toml:"codec_type"`
	// HTTP2 tunes downstream HTTP/2 (Envoy's http2_protocol_options).
	HTTP2 HTTP2Options `toml:"http2_protocol_options"`
	// HTTP3 tunes downstream HTTP/3 on a udp listener (see http3.go).
	HTTP3 HTTP3Options `toml:"http3_protocol_options"`
	// AltSvc is the Alt-Svc field added to HTTP/1 and HTTP/2 responses
	// (default: h3=":port" when a udp listener has this listener's port).
	AltSvc string `toml:"alt_svc"`
	// UseRemoteAddress appends the peer address to x-forwarded-for and trusts
	// nothing a client sent in it (default true: sluice sits at the edge).
	UseRemoteAddress *bool `toml:"use_remote_address"`
	// InternalAddressConfig says which clients are internal (Envoy's
	// internal_address_config): with use_remote_address, an internal
	// client's request keeps its x-envoy-* headers, an external one's
	// loses the internal-only ones (see MarkInternalRequests). Default:
	// loopback, RFC 1918 and fc00::/7.
	InternalAddressConfig *InternalAddressConfig `toml:"internal_address_config"`
	// MarkInternalRequests adds x-envoy-internal: true to internal
	// clients' requests and x-envoy-external-address to external ones', as
	// Envoy does by default (default false here: the extra field costs
	// about 2 % of the CPU of a small proxied request; the internal-only
	// headers are removed from external requests either way).
	MarkInternalRequests bool `toml:"mark_internal_requests"`
	// GenerateRequestID adds an x-request-id when the request has none
	// (default true).
	GenerateRequestID *bool `toml:"generate_request_id"`
	// PreserveExternalRequestID keeps the x-request-id an external client
	// sent (with use_remote_address). Default false, as in Envoy: an edge
	// request's id is not trusted and a new one replaces it.
	PreserveExternalRequestID bool `toml:"preserve_external_request_id"`
	// AlwaysSetRequestIDInResponse copies the request's x-request-id into
	// every response, the upstream's and sluice's own (Envoy's
	// always_set_request_id_in_response; default false).
	AlwaysSetRequestIDInResponse bool `toml:"always_set_request_id_in_response"`
	// MaxRequestHeadersKB bounds a request head (default 60, at most 8192).
	MaxRequestHeadersKB int `toml:"max_request_headers_kb"`
	// MaxHeadersCount bounds the number of request header fields (default
	// 100), on every protocol: more is answered 431.
	MaxHeadersCount int `toml:"max_headers_count"`
	// IdleTimeout closes a downstream connection with no active stream after
	// this long (default 1h; 0s disables).
	IdleTimeout *config.Duration `toml:"idle_timeout"`
	// RequestHeadersTimeout bounds receiving a request head once its first
	// byte arrived (default 0: disabled, as in Envoy): HTTP/1.1 answers 408
	// and closes, HTTP/2 closes a connection whose request header block
	// stays open longer (h2headers.go); not enforced on HTTP/3.
	RequestHeadersTimeout config.Duration `toml:"request_headers_timeout"`
	// StreamIdleTimeout ends a stream on which nothing moved (request body
	// bytes from the client, response bytes from the upstream, a filter
	// continuing a parked chain) for this long: 408 before the response
	// started, a reset after, flag SI (default 5m; 0s disables).
	StreamIdleTimeout *config.Duration `toml:"stream_idle_timeout"`
	// MaxConnectionDuration ends a downstream connection this long after it
	// was accepted (Envoy's common_http_protocol_options
	// .max_connection_duration): HTTP/1.1 closes it when idle and sends
	// Connection: close on the next response, HTTP/2 and HTTP/3 send GOAWAY
	// and let in-flight streams finish (default 0: none).
	MaxConnectionDuration config.Duration `toml:"max_connection_duration"`
	// NormalizePath normalizes each request's path (not its query) as
	// Envoy's normalize_path does, once, before route selection and the
	// HTTP filters, which (with the access log and the upstream) all see
	// the normalized path: RFC 3986 with Chromium's rules (percent-encoded
	// unreserved characters decoded, "." and ".." segments removed, ".."
	// stopping at the root, '\' read as '/'); a fragment, an encoded NUL
	// or a malformed escape is answered 400 (see gateway/internal/pathnorm).
	// Default true, unlike Envoy's false: an edge matching routes and RBAC
	// rules on prefixes must see /admin in /a/../admin and /%61dmin, as
	// nginx does before matching locations and as Envoy's edge best
	// practices configure.
	NormalizePath *bool `toml:"normalize_path"`
	// MergeSlashes turns each run of '/' in the path into one, after
	// normalize_path (default true, unlike Envoy's false: nginx merges by
	// default and Envoy's edge best practices enable it; otherwise //admin
	// misses a prefix = "/admin" rule).
	MergeSlashes *bool `toml:"merge_slashes"`
	// PathWithEscapedSlashesAction is what a path with %2F or %5C (any
	// case) gets, before normalize_path: KEEP_UNCHANGED (default, as
	// Envoy), REJECT_REQUEST (400), UNESCAPE_AND_REDIRECT (307 to the
	// unescaped, normalized path; 400 for gRPC, whose clients do not
	// follow redirects) or UNESCAPE_AND_FORWARD.
	PathWithEscapedSlashesAction string `toml:"path_with_escaped_slashes_action"`
	// AccessLog lists where each finished request is logged (Envoy's
	// format operators or json_format; see docs/observability.md).
	AccessLog []accesslog.Config `toml:"access_log"`
	// Tracing traces requests with Envoy's OpenTelemetry tracer: W3C
	// traceparent propagation and spans sent to an OTLP/HTTP collector
	// (see gateway/tracing and docs/observability.md). Absent: no
	// tracing, and nothing is added to the upstream request.
	Tracing *tracing.Config `toml:"tracing"`
	// HTTPFilters is the HTTP filter chain; the last must be terminal (the
	// router).
	HTTPFilters []config.Filter `toml:"http_filter"`

	// Edge options (Envoy's HttpConnectionManager fields of the same
	// names; see docs/filters/http_connection_manager.md).

	// LocalReplyConfig rewrites the manager's own replies (localreply.go).
	LocalReplyConfig *LocalReplyConfig `toml:"local_reply_config"`
	// ForwardClientCertDetails is what becomes of x-forwarded-client-cert
	// (xfcc.go): SANITIZE (default), FORWARD_ONLY, APPEND_FORWARD,
	// SANITIZE_SET or ALWAYS_FORWARD_ONLY.
	ForwardClientCertDetails string `toml:"forward_client_cert_details"`
	// SetCurrentClientCertDetails chooses the fields of the element
	// APPEND_FORWARD and SANITIZE_SET add.
	SetCurrentClientCertDetails *ClientCertDetails `toml:"set_current_client_cert_details"`
	// XFFNumTrustedHops is how many proxies in front of sluice append to
	// x-forwarded-for and are trusted (default 0): the client is the
	// address the farthest of them appended.
	XFFNumTrustedHops uint32 `toml:"xff_num_trusted_hops"`
	// SkipXFFAppend leaves x-forwarded-for as the client sent it, with
	// use_remote_address (default false).
	SkipXFFAppend bool `toml:"skip_xff_append"`
	// ServerName is the server header sluice sends (default none; with
	// server_header_transformation set, "sluice").
	ServerName string `toml:"server_name"`
	// ServerHeaderTransformation is OVERWRITE (default when server_name
	// is set), APPEND_IF_ABSENT or PASS_THROUGH (serverhdr.go).
	ServerHeaderTransformation string `toml:"server_header_transformation"`
	// Via is appended to the via header of requests and responses.
	Via string `toml:"via"`
	// StripMatchingHostPort removes from the Host (:authority) a port
	// equal to the listener's, before routing (default false).
	StripMatchingHostPort bool `toml:"strip_matching_host_port"`
	// StripAnyHostPort removes any port from the Host (:authority)
	// before routing (default false); it excludes strip_matching_host_port.
	StripAnyHostPort bool `toml:"strip_any_host_port"`
	// HeadersWithUnderscoresAction is what a request header whose name
	// holds '_' gets (Envoy's common_http_protocol_options field): ALLOW
	// (default), REJECT_REQUEST or DROP_HEADER (underscores.go).
	HeadersWithUnderscoresAction string `toml:"headers_with_underscores_action"`
	// MaxRequestsPerConnection ends a downstream connection once it has
	// carried this many requests (Envoy's common_http_protocol_options
	// field): HTTP/1.1 answers the last with Connection: close, HTTP/2 and
	// HTTP/3 send GOAWAY (default 0: no limit).
	MaxRequestsPerConnection uint32 `toml:"max_requests_per_connection"`
	// RequestTimeout bounds receiving the whole request, from its head to
	// its last byte through the HTTP filters (Envoy's request_timeout):
	// 408 while no response started (default 0: disabled).
	RequestTimeout config.Duration `toml:"request_timeout"`
}

// HTTP2Options are the downstream HTTP/2 settings.
type HTTP2Options struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS (default 100).
	MaxConcurrentStreams uint32 `toml:"max_concurrent_streams"`
	// InitialStreamWindowSize is each stream's receive window, in bytes
	// (default 256 KiB, at least 65535).
	InitialStreamWindowSize int32 `toml:"initial_stream_window_size"`
	// InitialConnectionWindowSize is the connection's receive window, in
	// bytes (default 1 MiB, at least 65535).
	InitialConnectionWindowSize int32 `toml:"initial_connection_window_size"`
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE, in bytes (default:
	// max_request_headers_kb).
	MaxHeaderListSize int `toml:"max_header_list_size"`
}

// ALPN is what a TLS filter chain ending in this manager offers when its
// tls table names no protocols.
func (c *Config) ALPN() []string {
	switch c.CodecType {
	case "http1":
		return []string{"http/1.1"}
	case "http2":
		return []string{"h2"}
	}
	return []string{"h2", "http/1.1"}
}

// Nested implements config.NestedFilters.
func (c *Config) Nested() (registry.Kind, string, []config.Filter) {
	return registry.HTTP, "http_filter", c.HTTPFilters
}

// InternalAddressConfig lists the client address ranges that are
// internal.
type InternalAddressConfig struct {
	// CIDRRanges replaces the default ranges; an empty list makes every
	// client external.
	CIDRRanges []string `toml:"cidr_ranges"`
}

// defaultInternalRanges are Envoy's internal addresses when
// internal_address_config is not set.
var defaultInternalRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fc00::/7"),
}

// internalRanges returns the internal client ranges, parsing the configured
// ones.
func (c *Config) internalRanges() ([]netip.Prefix, error) {
	if c.InternalAddressConfig == nil {
		return defaultInternalRanges, nil
	}
	var out []netip.Prefix
	for i, r := range c.InternalAddressConfig.CIDRRanges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, registry.Errorf(fmt.Sprintf("internal_address_config.cidr_ranges[%d]", i), "%v", err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (c *Config) withDefaults() {
	if c.CodecType == "" {
		c.CodecType = "auto"
	}
	if c.UseRemoteAddress == nil {
		t := true
		c.UseRemoteAddress = &t
	}
	if c.GenerateRequestID == nil {
		t := true
		c.GenerateRequestID = &t
	}
	if c.NormalizePath == nil {
		t := true
		c.NormalizePath = &t
	}
	if c.MergeSlashes == nil {
		t := true
		c.MergeSlashes = &t
	}
	if c.PathWithEscapedSlashesAction == "" {
		c.PathWithEscapedSlashesAction = "KEEP_UNCHANGED"
	}
	if c.MaxRequestHeadersKB == 0 {
		c.MaxRequestHeadersKB = 60
	}
	if c.MaxHeadersCount == 0 {
		c.MaxHeadersCount = 100
	}
	if c.IdleTimeout == nil {
		c.IdleTimeout = &config.Duration{Duration: time.Hour}
	}
	if c.StreamIdleTimeout == nil {
		c.StreamIdleTimeout = &config.Duration{Duration: 5 * time.Minute}
	}
	c.HTTP3.withDefaults()
	if c.Tracing != nil {
		c.Tracing.WithDefaults()
	}
	h2 := &c.HTTP2
	if h2.MaxConcurrentStreams == 0 {
		h2.MaxConcurrentStreams = 100
	}
	if h2.InitialStreamWindowSize == 0 {
		h2.InitialStreamWindowSize = 256 << 10
	}
	if h2.InitialConnectionWindowSize == 0 {
		h2.InitialConnectionWindowSize = 1 << 20
	}
	if h2.MaxHeaderListSize == 0 {
		h2.MaxHeaderListSize = c.MaxRequestHeadersKB << 10
	}
}

func (c *Config) validate() error {
	switch {
	case c.StatPrefix == "":
		return registry.Errorf("stat_prefix", "required")
	case c.RouteConfig == "":
		return registry.Errorf("route_config", "required")
	case c.CodecType != "auto" && c.CodecType != "http1" && c.CodecType != "http2":
		return registry.Errorf("codec_type", "must be auto, http1 or http2, not %q", c.CodecType)
	case c.HTTP2.MaxConcurrentStreams > 1<<31-1:
		return registry.Errorf("http2_protocol_options.max_concurrent_streams", "must be in 1..2147483647")
	case c.HTTP2.InitialStreamWindowSize < 65535:
		return registry.Errorf("http2_protocol_options.initial_stream_window_size", "must be in 65535..2147483647")
	case c.HTTP2.InitialConnectionWindowSize < 65535:
		return registry.Errorf("http2_protocol_options.initial_connection_window_size", "must be in 65535..2147483647")
	case c.HTTP2.MaxHeaderListSize < 1024:
		return registry.Errorf("http2_protocol_options.max_header_list_size", "must be at least 1024")
	case c.MaxRequestHeadersKB < 1 || c.MaxRequestHeadersKB > 8192:
		return registry.Errorf("max_request_headers_kb", "must be in 1..8192")
	case c.MaxHeadersCount < 1 || c.MaxHeadersCount > 10000:
		return registry.Errorf("max_headers_count", "must be in 1..10000")
	case c.IdleTimeout.Duration < 0:
		return registry.Errorf("idle_timeout", "must not be negative")
	case c.RequestHeadersTimeout.Duration < 0:
		return registry.Errorf("request_headers_timeout", "must not be negative")
	case c.StreamIdleTimeout.Duration < 0:
		return registry.Errorf("stream_idle_timeout", "must not be negative")
	case c.RequestTimeout.Duration < 0:
		return registry.Errorf("request_timeout", "must not be negative")
	case c.MaxConnectionDuration.Duration < 0:
		return registry.Errorf("max_connection_duration", "must not be negative")
	case len(c.HTTPFilters) == 0:
		return registry.Errorf("http_filter", "at least one HTTP filter (the router) is required")
	}
	if _, err := c.pathOptions(); err != nil {
		return err
	}
	if _, err := c.xfccMode(); err != nil {
		return err
	}
	if _, _, err := c.serverMode(); err != nil {
		return err
	}
	if _, err := c.underscoresAction(); err != nil {
		return err
	}
	if c.StripMatchingHostPort && c.StripAnyHostPort {
		return registry.Errorf("strip_any_host_port", "excludes strip_matching_host_port")
	}
	if err := c.HTTP3.validate(); err != nil {
		return err
	}
	if c.Tracing != nil {
		if err := c.Tracing.Validate("tracing."); err != nil {
			return err
		}
	}
	for i, f := range c.HTTPFilters {
		info, _ := registry.Lookup(f.Name)
		last := i == len(c.HTTPFilters)-1
		if info == nil {
			return registry.Errorf(fmt.Sprintf("http_filter[%d].name", i), "unknown filter %q", f.Name)
		}
		if info.Terminal != last {
			if last {
				return registry.Errorf(fmt.Sprintf("http_filter[%d].name", i), "the last HTTP filter must be terminal (e.g. sluice.filters.http.router), not %q", f.Name)
			}
			return registry.Errorf(fmt.Sprintf("http_filter[%d].name", i), "terminal filter %q must be last", f.Name)
		}
	}
	return nil
}

// pathOptions are the path normalization options of a config with its
// defaults set.
func (c *Config) pathOptions() (pathnorm.Options, error) {
	a, err := pathnorm.ParseAction(c.PathWithEscapedSlashesAction)
	if err != nil {
		return pathnorm.Options{}, registry.Errorf("path_with_escaped_slashes_action", "must be KEEP_UNCHANGED, REJECT_REQUEST, UNESCAPE_AND_REDIRECT or UNESCAPE_AND_FORWARD, not %q", c.PathWithEscapedSlashesAction)
	}
	return pathnorm.Options{Normalize: *c.NormalizePath, MergeSlashes: *c.MergeSlashes, EscapedSlashes: a}, nil
}

// StatDefs implements stats.FilterStats: the tracer's counters and the
// manager's tracing decision counters when the manager traces.
func (c *Config) StatDefs(string) []stats.Def {
	if c.Tracing == nil {
		return nil
	}
	return append(tracing.StatDefs(), tracing.DecisionStatDefs(stats.HTTPName(c.StatPrefix))...)
}
