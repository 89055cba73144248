package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sluice-proxy/sluice/gateway/dns"
	"github.com/sluice-proxy/sluice/gateway/health"
	"github.com/sluice-proxy/sluice/gateway/outlier"
)

// Envoy's circuit-breaker defaults (Thresholds, default priority).
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// Envoy's retry defaults.
const (
	DefaultNumRetries       = 1
	DefaultRetryBaseBackoff = 25 * time.Millisecond
)

// CircuitBreakersConfig is a cluster's [cluster.circuit_breakers] (Envoy's
// CircuitBreakers.Thresholds, default priority). The limits are global
// across worker processes. Unset values take Envoy's defaults.
type CircuitBreakersConfig struct {
	MaxConnections     *int `toml:"max_connections"`
	MaxPendingRequests *int `toml:"max_pending_requests"`
	MaxRequests        *int `toml:"max_requests"`
	MaxRetries         *int `toml:"max_retries"`
	// RetryBudget, when set, replaces max_retries (Envoy's retry_budget):
	// the retries in flight may be budget_percent of the requests active
	// and pending, and at least min_retry_concurrency.
	RetryBudget *RetryBudgetConfig `toml:"retry_budget"`
	// High are the thresholds of requests on routes with priority =
	// "high" (Envoy's Thresholds with priority HIGH), counted apart from
	// the default priority's; unset keys take the same defaults.
	High *PriorityThresholds `toml:"high"`
}

// PriorityThresholds is [cluster.circuit_breakers.high]. Each priority
// has its own connection pool per host (as in Envoy), so max_connections
// here bounds the high priority's upstream connections, counted apart from
// the default priority's.
type PriorityThresholds struct {
	MaxConnections     *int               `toml:"max_connections"`
	MaxPendingRequests *int               `toml:"max_pending_requests"`
	MaxRequests        *int               `toml:"max_requests"`
	MaxRetries         *int               `toml:"max_retries"`
	RetryBudget        *RetryBudgetConfig `toml:"retry_budget"`
}

// Thresholds returns the high priority's thresholds as a
// CircuitBreakersConfig (unset when High is nil: Envoy's defaults, not the
// default priority's values).
func (c *CircuitBreakersConfig) Thresholds() *CircuitBreakersConfig {
	h := &CircuitBreakersConfig{}
	if c.High != nil {
		h.MaxConnections, h.MaxPendingRequests, h.MaxRequests, h.MaxRetries, h.RetryBudget =
			c.High.MaxConnections, c.High.MaxPendingRequests, c.High.MaxRequests, c.High.MaxRetries, c.High.RetryBudget
	}
	return h
}

// RetryBudgetConfig is [cluster.circuit_breakers.retry_budget]; unset
// values take Envoy's defaults (20 %, 3).
type RetryBudgetConfig struct {
	BudgetPercent       *float64 `toml:"budget_percent"`
	MinRetryConcurrency *int     `toml:"min_retry_concurrency"`
}

// Envoy's retry budget defaults.
const (
	DefaultRetryBudgetPercent        = 20.0
	DefaultRetryBudgetMinConcurrency = 3
)

// Budget returns the budget's percent and minimum with defaults applied.
func (b *RetryBudgetConfig) Budget() (percent float64, minConcurrency uint64) {
	percent, minConcurrency = DefaultRetryBudgetPercent, DefaultRetryBudgetMinConcurrency
	if b.BudgetPercent != nil {
		percent = *b.BudgetPercent
	}
	if b.MinRetryConcurrency != nil {
		minConcurrency = uint64(max(*b.MinRetryConcurrency, 0))
	}
	return percent, minConcurrency
}

// Limits returns the four limits with defaults applied: connections,
// pending requests, requests, retries.
func (c *CircuitBreakersConfig) Limits() (conns, pending, requests, retries uint64) {
	v := func(p *int, d int) uint64 {
		if p == nil {
			return uint64(d)
		}
		return uint64(max(*p, 0))
	}
	return v(c.MaxConnections, DefaultMaxConnections), v(c.MaxPendingRequests, DefaultMaxPendingRequests),
		v(c.MaxRequests, DefaultMaxRequests), v(c.MaxRetries, DefaultMaxRetries)
}

// HealthCheckConfig is one [[cluster.health_check]] (Envoy's
// core.v3.HealthCheck); each key maps onto the field of the same name of
// health.Config.
type HealthCheckConfig struct {
	Type                  string                `toml:"type"`
	Interval              Duration              `toml:"interval"`
	Timeout               Duration              `toml:"timeout"`
	IntervalJitter        Duration              `toml:"interval_jitter"`
	IntervalJitterPercent uint32                `toml:"interval_jitter_percent"`
	InitialJitter         Duration              `toml:"initial_jitter"`
	UnhealthyThreshold    uint32                `toml:"unhealthy_threshold"`
	HealthyThreshold      uint32                `toml:"healthy_threshold"`
	NoTrafficInterval     Duration              `toml:"no_traffic_interval"`
	HTTP                  HTTPHealthCheckConfig `toml:"http"`
	TCP                   TCPHealthCheckConfig  `toml:"tcp"`
	GRPC                  GRPCHealthCheckConfig `toml:"grpc"`
}

// HTTPHealthCheckConfig is a health check's http table.
type HTTPHealthCheckConfig struct {
	Path string `toml:"path"`
	Host string `toml:"host"`
	// ExpectedStatuses are half-open ranges [start, end).
	ExpectedStatuses [][]int `toml:"expected_statuses"`
}

// TCPHealthCheckConfig is a health check's tcp table: hex bytes to send
// and hex blocks expected.
type TCPHealthCheckConfig struct {
	Send    string   `toml:"send"`
	Receive []string `toml:"receive"`
}

// GRPCHealthCheckConfig is a health check's grpc table.
type GRPCHealthCheckConfig struct {
	ServiceName string `toml:"service_name"`
	Authority   string `toml:"authority"`
}

// Health maps h onto the checker's config. Malformed expected_statuses
// ranges are returned as an error.
func (h *HealthCheckConfig) Health() (*health.Config, error) {
	c := &health.Config{
		Type: h.Type, Interval: h.Interval.Duration, Timeout: h.Timeout.Duration,
		IntervalJitter: h.IntervalJitter.Duration, IntervalJitterPercent: h.IntervalJitterPercent,
		InitialJitter: h.InitialJitter.Duration, UnhealthyThreshold: h.UnhealthyThreshold,
		HealthyThreshold: h.HealthyThreshold, NoTrafficInterval: h.NoTrafficInterval.Duration,
		HTTP: health.HTTPConfig{Path: h.HTTP.Path, Host: h.HTTP.Host},
		TCP:  health.TCPConfig{Send: h.TCP.Send, Receive: slices.Clone(h.TCP.Receive)},
		GRPC: health.GRPCConfig{ServiceName: h.GRPC.ServiceName, Authority: h.GRPC.Authority},
	}
	for _, r := range h.HTTP.ExpectedStatuses {
		if len(r) != 2 {
			return nil, fmt.Errorf("http.expected_statuses: range %v is not [start, end]", r)
		}
		c.HTTP.ExpectedStatuses = append(c.HTTP.ExpectedStatuses, [2]int{r[0], r[1]})
	}
	return c, nil
}

// OutlierConfig is a cluster's [cluster.outlier_detection] (Envoy's
// OutlierDetection); each key maps onto the field of outlier.Config of the
// same name. Unset values take Envoy's defaults.
type OutlierConfig struct {
	Consecutive5xx                         *uint32  `toml:"consecutive_5xx"`
	ConsecutiveGatewayFailure              *uint32  `toml:"consecutive_gateway_failure"`
	ConsecutiveLocalOriginFailure          *uint32  `toml:"consecutive_local_origin_failure"`
	Interval                               Duration `toml:"interval"`
	BaseEjectionTime                       Duration `toml:"base_ejection_time"`
	MaxEjectionTime                        Duration `toml:"max_ejection_time"`
	MaxEjectionPercent                     *uint32  `toml:"max_ejection_percent"`
	EnforcingConsecutive5xx                *uint32  `toml:"enforcing_consecutive_5xx"`
	EnforcingConsecutiveGatewayFailure     *uint32  `toml:"enforcing_consecutive_gateway_failure"`
	EnforcingConsecutiveLocalOriginFailure *uint32  `toml:"enforcing_consecutive_local_origin_failure"`
	EnforcingSuccessRate                   *uint32  `toml:"enforcing_success_rate"`
	EnforcingLocalOriginSuccessRate        *uint32  `toml:"enforcing_local_origin_success_rate"`
	EnforcingFailurePercentage             *uint32  `toml:"enforcing_failure_percentage"`
	EnforcingFailurePercentageLocalOrigin  *uint32  `toml:"enforcing_failure_percentage_local_origin"`
	SuccessRateMinimumHosts                *uint32  `toml:"success_rate_minimum_hosts"`
	SuccessRateRequestVolume               *uint32  `toml:"success_rate_request_volume"`
	SuccessRateStdevFactor                 *uint32  `toml:"success_rate_stdev_factor"`
	FailurePercentageThreshold             *uint32  `toml:"failure_percentage_threshold"`
	FailurePercentageMinimumHosts          *uint32  `toml:"failure_percentage_minimum_hosts"`
	FailurePercentageRequestVolume         *uint32  `toml:"failure_percentage_request_volume"`
	SplitExternalLocalOriginErrors         bool     `toml:"split_external_local_origin_errors"`
	// SuccessfulActiveHealthCheckUnejectHost: a passing active health check
	// brings back a host outlier detection ejected (nil: true, Envoy's
	// default).
	SuccessfulActiveHealthCheckUnejectHost *bool `toml:"successful_active_health_check_uneject_host"`
}

// UnejectOnHealthCheck reports whether a passing active health check
// brings back a host outlier detection ejected: true unless
// successful_active_health_check_uneject_host is false.
func (o *OutlierConfig) UnejectOnHealthCheck() bool {
	return o.SuccessfulActiveHealthCheckUnejectHost == nil || *o.SuccessfulActiveHealthCheckUnejectHost
}

// Policy resolves o (defaults applied, validated).
func (o *OutlierConfig) Policy() (*outlier.Policy, error) {
	c := outlier.Config{
		Consecutive5xx: o.Consecutive5xx, ConsecutiveGatewayFailure: o.ConsecutiveGatewayFailure,
		ConsecutiveLocalOriginFailure: o.ConsecutiveLocalOriginFailure,
		Interval:                      o.Interval.Duration, BaseEjectionTime: o.BaseEjectionTime.Duration,
		MaxEjectionTime: o.MaxEjectionTime.Duration, MaxEjectionPercent: o.MaxEjectionPercent,
		EnforcingConsecutive5xx:         o.EnforcingConsecutive5xx,
		EnforcingConsecutiveGateway:     o.EnforcingConsecutiveGatewayFailure,
		EnforcingConsecutiveLocal:       o.EnforcingConsecutiveLocalOriginFailure,
		EnforcingSuccessRate:            o.EnforcingSuccessRate,
		EnforcingLocalOriginSuccess:     o.EnforcingLocalOriginSuccessRate,
		EnforcingFailurePercentage:      o.EnforcingFailurePercentage,
		EnforcingFailurePercentageLocal: o.EnforcingFailurePercentageLocalOrigin,
		SuccessRateMinimumHosts:         o.SuccessRateMinimumHosts,
		SuccessRateRequestVolume:        o.SuccessRateRequestVolume,
		SuccessRateStdevFactor:          o.SuccessRateStdevFactor,
		FailurePercentageThreshold:      o.FailurePercentageThreshold,
		FailurePercentageMinimumHosts:   o.FailurePercentageMinimumHosts,
		FailurePercentageRequestVolume:  o.FailurePercentageRequestVolume,
		SplitExternalLocalOriginErrors:  o.SplitExternalLocalOriginErrors,
	}
	return c.Resolve()
}

// RetryPolicy is a route's [route_config.virtual_host.route.retry_policy]
// (Envoy's RetryPolicy).
type RetryPolicy struct {
	// RetryOn lists the conditions: 5xx, gateway-error, reset,
	// connect-failure, retriable-4xx, refused-stream,
	// retriable-status-codes, and the gRPC ones, met by the grpc-status
	// of a response head: cancelled, deadline-exceeded, internal,
	// resource-exhausted, unavailable.
	RetryOn []string `toml:"retry_on"`
	// NumRetries is the number of retries (default 1).
	NumRetries *int `toml:"num_retries"`
	// PerTryTimeout bounds each try (0: the route timeout only).
	PerTryTimeout Duration `toml:"per_try_timeout"`
	// PerTryIdleTimeout bounds the silence between response bytes of a
	// try: a try that receives nothing for that long fails as a timeout
	// (retryable) unless response bytes already went downstream.
	PerTryIdleTimeout Duration `toml:"per_try_idle_timeout"`
	// RetriableStatusCodes are retried with retriable-status-codes.
	RetriableStatusCodes []int `toml:"retriable_status_codes"`
	// RetryHostPredicate: "previous_hosts" avoids hosts already tried.
	RetryHostPredicate []string `toml:"retry_host_predicate"`
	// RetryBackOff is the exponential backoff (base 25ms, max 10×base).
	RetryBackOff RetryBackOff `toml:"retry_back_off"`
}

// MaxStreamDuration is a route's [route_config.virtual_host.route.max_stream_duration]
// (Envoy's RouteAction.MaxStreamDuration, its gRPC keys).
type MaxStreamDuration struct {
	// GrpcTimeoutHeaderMax, when set, makes the grpc-timeout header of a
	// gRPC request its route timeout, capped at this value (0: no cap; a
	// request without grpc-timeout then has no timeout, as in Envoy).
	GrpcTimeoutHeaderMax *Duration `toml:"grpc_timeout_header_max"`
	// GrpcTimeoutHeaderOffset is taken off the grpc-timeout value (when
	// smaller than it), leaving time for the answer to come back.
	GrpcTimeoutHeaderOffset Duration `toml:"grpc_timeout_header_offset"`
}

// RetryBackOff is a retry policy's backoff.
type RetryBackOff struct {
	BaseInterval Duration `toml:"base_interval"`
	MaxInterval  Duration `toml:"max_interval"`
}

// RequestMirrorPolicy sends a copy of a route's requests to another
// cluster, fire and forget: the authority gets a "-shadow" suffix and the
// response is discarded.
type RequestMirrorPolicy struct {
	Cluster string `toml:"cluster"`
	// RuntimeFraction is the percentage of requests mirrored (default 100).
	RuntimeFraction *float64 `toml:"runtime_fraction"`
}

// clusterResilience checks a cluster's health checks, outlier detection and
// circuit breakers.
func (v *validator) clusterResilience(p string, cl *Cluster) {
	for j := range cl.HealthChecks {
		k := indexKey(p+".health_check", j)
		hc, err := cl.HealthChecks[j].Health()
		if err == nil {
			err = hc.Validate()
		}
		if err != nil {
			v.errorf(k, "%v", err)
		}
	}
	if len(cl.HealthChecks) > 1 {
		v.errorf(p+".health_check", "at most one health check per cluster is supported")
	}
	if cl.OutlierDetection != nil {
		if _, err := cl.OutlierDetection.Policy(); err != nil {
			v.errorf(p+".outlier_detection", "%v", err)
		}
	}
	v.thresholds(p+".circuit_breakers", &cl.CircuitBreakers)
	if cl.CircuitBreakers.High != nil {
		v.thresholds(p+".circuit_breakers.high", cl.CircuitBreakers.Thresholds())
	}
}

// thresholds checks one priority's circuit-breaker thresholds at p.
func (v *validator) thresholds(p string, cb *CircuitBreakersConfig) {
	for _, f := range []struct {
		k string
		p *int
	}{{"max_connections", cb.MaxConnections}, {"max_pending_requests", cb.MaxPendingRequests},
		{"max_requests", cb.MaxRequests}, {"max_retries", cb.MaxRetries}} {
		if f.p != nil && *f.p < 0 {
			v.errorf(p+"."+f.k, "must be >= 0")
		}
	}
	if rb := cb.RetryBudget; rb != nil {
		if rb.BudgetPercent != nil && (*rb.BudgetPercent < 0 || *rb.BudgetPercent > 100) {
			v.errorf(p+".retry_budget.budget_percent", "must be between 0 and 100, got %v", *rb.BudgetPercent)
		}
		if rb.MinRetryConcurrency != nil && *rb.MinRetryConcurrency < 0 {
			v.errorf(p+".retry_budget.min_retry_concurrency", "must be >= 0")
		}
	}
}

// retryPolicy checks a route's retry policy at p.
func (v *validator) retryPolicy(p string, rp *RetryPolicy) {
	for _, on := range rp.RetryOn {
		switch on {
		case "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes",
			"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
		default:
			v.errorf(p+".retry_on", "unsupported retry condition %q", on)
		}
	}
	if rp.NumRetries != nil && *rp.NumRetries < 0 {
		v.errorf(p+".num_retries", "must be >= 0")
	}
	for _, c := range rp.RetriableStatusCodes {
		if c < 100 || c > 599 {
			v.errorf(p+".retriable_status_codes", "%d is not an HTTP status", c)
		}
	}
	for _, h := range rp.RetryHostPredicate {
		if h != "previous_hosts" {
			v.errorf(p+".retry_host_predicate", "unsupported predicate %q (previous_hosts)", h)
		}
	}
	if rp.PerTryTimeout.Duration < 0 || rp.PerTryIdleTimeout.Duration < 0 || rp.RetryBackOff.BaseInterval.Duration < 0 ||
		rp.RetryBackOff.MaxInterval.Duration < 0 {
		v.errorf(p, "retry durations must be >= 0")
	}
}

// DNSSpec is the resolution spec of a strict_dns or logical_dns cluster.
func (c *Cluster) DNSSpec() *dns.Spec {
	return &dns.Spec{Name: c.Name, Type: c.Type, Endpoints: slices.Clone(c.Endpoints),
		RefreshRate: c.DNSRefreshRate.Duration, RespectTTL: c.RespectDNSTTL}
}

// dnsCluster checks a DNS cluster's resolution settings.
func (v *validator) dnsCluster(p string, cl *Cluster) {
	if err := cl.DNSSpec().Validate(); err != nil {
		v.errorf(p, "%v", err)
	}
	v.duration(p+".dns_refresh_rate", cl.DNSRefreshRate.Duration)
	for j, r := range cl.DNSResolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			v.errorf(indexKey(p+".dns_resolvers", j), "%q is not ip:port", r)
		}
	}
}

// mirrorPolicy checks a route's request mirror policy at p.
func (v *validator) mirrorPolicy(p string, mp *RequestMirrorPolicy) {
	if mp.Cluster == "" {
		v.errorf(p+".cluster", "required")
	} else if !slices.ContainsFunc(v.c.Clusters, func(c Cluster) bool { return c.Name == mp.Cluster }) {
		v.errorf(p+".cluster", "unknown cluster %q", mp.Cluster)
	}
	if f := mp.RuntimeFraction; f != nil && (*f < 0 || *f > 100) {
		v.errorf(p+".runtime_fraction", "must be between 0 and 100")
	}
}

// MirrorFraction is the percentage of requests mp mirrors.
func (mp *RequestMirrorPolicy) MirrorFraction() float64 {
	if mp.RuntimeFraction == nil {
		return 100
	}
	return *mp.RuntimeFraction
}
