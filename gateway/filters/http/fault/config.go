// Package fault is the HTTP filter sluice.filters.http.fault: Envoy's fault
// injection filter (envoy.filters.http.fault). It delays requests before
// they go on to the router and aborts them with a local reply (an HTTP
// status, or a gRPC status for gRPC requests), for a configured share of
// the requests or as the request's x-envoy-fault-* headers ask. See
// README.md.
package fault

import (
	"fmt"
	"math"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/internal/headermatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.fault"

func init() {
	registry.Register(registry.Info{
		Name:        Name,
		Kind:        registry.HTTP,
		New:         func() registry.Config { return &Config{} },
		NewPerRoute: func() registry.PerRouteConfig { return &PerRoute{} },
	})
}

// maxFixedDelay bounds fixed_delay: a longer one is a config mistake.
const maxFixedDelay = 24 * time.Hour

// Abort is Envoy's FaultAbort: how requests are aborted. Exactly one of
// HTTPStatus, GRPCStatus and HeaderAbort is set.
//
//	abort = { http_status = 503, percentage = 10 }
type Abort struct {
	// HTTPStatus is the status of the local reply, 200 … 599.
	HTTPStatus int `toml:"http_status"`
	// GRPCStatus is the grpc-status of the reply to a gRPC request, 0 …
	// 16 (the reply's HTTP status is 200, as Envoy's).
	GRPCStatus *int `toml:"grpc_status"`
	// HeaderAbort takes the status from the request's
	// x-envoy-fault-abort-request (HTTP) or
	// x-envoy-fault-abort-grpc-request (gRPC) header; a request without
	// a valid one is not aborted.
	HeaderAbort bool `toml:"header_abort"`
	// Percentage is the share of requests aborted, 0 … 100 (fractions
	// allowed). Default 100. With HeaderAbort, the request's
	// x-envoy-fault-abort-request-percentage header may lower it.
	Percentage *float64 `toml:"percentage"`
}

// Delay is Envoy's FaultDelay: how requests are delayed. Exactly one of
// FixedDelay and HeaderDelay is set.
//
//	delay = { fixed_delay = "2s", percentage = 50 }
type Delay struct {
	// FixedDelay is the delay, more than 0 and at most 24h.
	FixedDelay *config.Duration `toml:"fixed_delay"`
	// HeaderDelay takes the delay, in milliseconds, from the request's
	// x-envoy-fault-delay-request header; a request without a valid one
	// is not delayed.
	HeaderDelay bool `toml:"header_delay"`
	// Percentage is the share of requests delayed, 0 … 100. Default 100.
	// With HeaderDelay, the request's
	// x-envoy-fault-delay-request-percentage header may lower it.
	Percentage *float64 `toml:"percentage"`
}

// ResponseRateLimit is Envoy's FaultRateLimit: the bandwidth of the
// response body. Exactly one of FixedLimitKbps and HeaderLimit is set.
//
//	response_rate_limit = { fixed_limit_kbps = 64, percentage = 10 }
type ResponseRateLimit struct {
	// FixedLimitKbps is the limit in KiB (1024 bytes) per second, at
	// least 1.
	FixedLimitKbps int64 `toml:"fixed_limit_kbps"`
	// HeaderLimit takes the limit, in KiB per second, from the request's
	// x-envoy-fault-throughput-response header; a request without a
	// valid one is not limited.
	HeaderLimit bool `toml:"header_limit"`
	// Percentage is the share of requests limited, 0 … 100. Default 100.
	// With HeaderLimit, the request's
	// x-envoy-fault-throughput-response-percentage header may lower it.
	Percentage *float64 `toml:"percentage"`
}

// maxKbps bounds a rate limit (1 TiB/s): it keeps the byte arithmetic
// far from overflowing.
const maxKbps = 1 << 30

// Config is the filter's TOML table (Envoy's HTTPFault). At least one of
// Abort, Delay and ResponseRateLimit is set.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.fault"
//	[listener.filter_chain.filter.config.http_filter.config]
//	abort = { http_status = 503, percentage = 5 }
//	delay = { fixed_delay = "1s", percentage = 10 }
type Config struct {
	Abort *Abort `toml:"abort"`
	Delay *Delay `toml:"delay"`
	// ResponseRateLimit limits the bandwidth of response bodies.
	ResponseRateLimit *ResponseRateLimit `toml:"response_rate_limit"`
	// MaxActiveFaults bounds the requests with a fault in progress (from
	// the fault's start to the end of the stream), per worker process;
	// past it a request gets no fault and faults_overflow counts it.
	// Unset: no bound.
	MaxActiveFaults *int64 `toml:"max_active_faults"`
	// UpstreamCluster restricts faults to requests whose route sends them
	// to this cluster (a route with weighted clusters matches none).
	UpstreamCluster string `toml:"upstream_cluster"`
	// Headers restricts faults to requests that match every matcher
	// (the shape of a route's match.headers).
	Headers []config.HeaderMatcher `toml:"headers"`
	// DownstreamNodes restricts faults to requests whose
	// x-envoy-downstream-service-node header is one of these (only an
	// internal request keeps that header).
	DownstreamNodes []string `toml:"downstream_nodes"`
}

// PerRoute is the filter's typed_per_filter_config table on a route,
// virtual host or route table: either disabled = true (no faults for the
// routes), or the filter's own keys, which replace the filter's config for
// the routes, as Envoy's per-route HTTPFault does.
//
//	[route_config.virtual_host.route.typed_per_filter_config."sluice.filters.http.fault"]
//	abort = { http_status = 500 }
type PerRoute struct {
	// Disabled turns the filter off for the routes.
	Disabled bool `toml:"disabled"`
	Config
}

// percent is a share of requests, 0 … 100.
type percent float64

// settings is a built Config: what one request's faults are decided by.
// It is immutable and safe for concurrent use.
type settings struct {
	abortStatus int // 0: none configured
	abortGRPC   int // -1: none configured
	headerAbort bool
	abortPct    percent
	hasAbort    bool

	delay       time.Duration
	headerDelay bool
	delayPct    percent
	hasDelay    bool

	kbps     int64 // fixed_limit_kbps
	headerRL bool
	rlPct    percent
	hasRL    bool

	maxActive int64 // math.MaxInt64: unbounded
	cluster   string
	headers   []headermatch.Matcher
	nodes     []string
}

// perRoute is a built PerRoute.
type perRoute struct {
	disabled bool
	s        *settings
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	s, err := c.build()
	if err != nil {
		return nil, err
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	return &Factory{s: s, stats: newStats(slab, ctx.StatScope)}, nil
}

// Validate implements registry.PerRouteConfig.
func (p *PerRoute) Validate() error {
	_, err := p.BuildPerRoute(nil)
	return err
}

// BuildPerRoute implements registry.PerRouteConfig.
func (p *PerRoute) BuildPerRoute(*registry.BuildContext) (any, error) {
	if p.Disabled {
		if p.Abort != nil || p.Delay != nil || p.ResponseRateLimit != nil || p.MaxActiveFaults != nil || p.UpstreamCluster != "" ||
			p.Headers != nil || p.DownstreamNodes != nil {
			return nil, registry.Errorf("disabled", "set either disabled = true or the fault keys, not both")
		}
		return &perRoute{disabled: true}, nil
	}
	s, err := p.Config.build()
	if err != nil {
		return nil, err
	}
	return &perRoute{s: s}, nil
}

func (c *Config) build() (*settings, error) {
	s := &settings{abortGRPC: -1, maxActive: math.MaxInt64, cluster: c.UpstreamCluster}
	if c.Abort == nil && c.Delay == nil && c.ResponseRateLimit == nil {
		return nil, registry.Errorf("abort", "set at least one of abort, delay and response_rate_limit")
	}
	if a := c.Abort; a != nil {
		n := 0
		if a.HTTPStatus != 0 {
			n++
			if a.HTTPStatus < 200 || a.HTTPStatus > 599 {
				return nil, registry.Errorf("abort.http_status", "must be 200 … 599, not %d", a.HTTPStatus)
			}
			s.abortStatus = a.HTTPStatus
		}
		if a.GRPCStatus != nil {
			n++
			if *a.GRPCStatus < 0 || *a.GRPCStatus > 16 {
				return nil, registry.Errorf("abort.grpc_status", "must be 0 … 16, not %d", *a.GRPCStatus)
			}
			s.abortGRPC = *a.GRPCStatus
		}
		if a.HeaderAbort {
			n++
			s.headerAbort = true
		}
		if n != 1 {
			return nil, registry.Errorf("abort", "set exactly one of http_status, grpc_status and header_abort = true")
		}
		p, err := pct(a.Percentage)
		if err != nil {
			return nil, registry.Errorf("abort.percentage", "%v", err)
		}
		s.abortPct, s.hasAbort = p, true
	}
	if d := c.Delay; d != nil {
		if (d.FixedDelay != nil) == d.HeaderDelay {
			return nil, registry.Errorf("delay", "set exactly one of fixed_delay and header_delay = true")
		}
		if d.FixedDelay != nil {
			if d.FixedDelay.Duration <= 0 || d.FixedDelay.Duration > maxFixedDelay {
				return nil, registry.Errorf("delay.fixed_delay", "must be more than 0 and at most %v, not %v", maxFixedDelay, d.FixedDelay.Duration)
			}
			s.delay = d.FixedDelay.Duration
		}
		s.headerDelay = d.HeaderDelay
		p, err := pct(d.Percentage)
		if err != nil {
			return nil, registry.Errorf("delay.percentage", "%v", err)
		}
		s.delayPct, s.hasDelay = p, true
	}
	if r := c.ResponseRateLimit; r != nil {
		if (r.FixedLimitKbps != 0) == r.HeaderLimit {
			return nil, registry.Errorf("response_rate_limit", "set exactly one of fixed_limit_kbps and header_limit = true")
		}
		if r.FixedLimitKbps != 0 && (r.FixedLimitKbps < 1 || r.FixedLimitKbps > maxKbps) {
			return nil, registry.Errorf("response_rate_limit.fixed_limit_kbps", "must be 1 … %d, not %d", maxKbps, r.FixedLimitKbps)
		}
		p, err := pct(r.Percentage)
		if err != nil {
			return nil, registry.Errorf("response_rate_limit.percentage", "%v", err)
		}
		s.kbps, s.headerRL, s.rlPct, s.hasRL = r.FixedLimitKbps, r.HeaderLimit, p, true
	}
	if c.MaxActiveFaults != nil {
		if *c.MaxActiveFaults < 0 {
			return nil, registry.Errorf("max_active_faults", "must be 0 or more, not %d", *c.MaxActiveFaults)
		}
		s.maxActive = *c.MaxActiveFaults
	}
	for i := range c.Headers {
		m, err := c.Headers[i].Compile()
		if err != nil {
			return nil, registry.Within(fmt.Sprintf("headers[%d]", i), err)
		}
		s.headers = append(s.headers, m)
	}
	for i, n := range c.DownstreamNodes {
		if n == "" {
			return nil, registry.Errorf(fmt.Sprintf("downstream_nodes[%d]", i), "empty node name")
		}
	}
	s.nodes = c.DownstreamNodes
	return s, nil
}

// pct checks a configured percentage; nil is 100.
func pct(p *float64) (percent, error) {
	if p == nil {
		return 100, nil
	}
	if math.IsNaN(*p) || *p < 0 || *p > 100 {
		return 0, fmt.Errorf("must be 0 … 100, not %v", *p)
	}
	return percent(*p), nil
}
