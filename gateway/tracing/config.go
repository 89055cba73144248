package tracing

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Config is the HTTP connection manager's tracing table (Envoy's
// HttpConnectionManager.tracing with the OpenTelemetry tracer).
type Config struct {
	// RandomSampling is the percentage (0..100) of requests without a
	// parent trace context that are traced (default 100, as Envoy).
	RandomSampling *float64 `toml:"random_sampling"`
	// ClientSampling is the percentage of requests carrying
	// x-client-trace-id that are traced whatever random_sampling says
	// (default 100).
	ClientSampling *float64 `toml:"client_sampling"`
	// OverallSampling caps every decision above: a request is traced only
	// within this percentage (default 100).
	OverallSampling *float64 `toml:"overall_sampling"`
	// SpawnUpstreamSpan adds a CLIENT span, child of the request's SERVER
	// span, for the upstream request; its id is the parent in the
	// traceparent sent upstream (default false).
	SpawnUpstreamSpan bool `toml:"spawn_upstream_span"`
	// CustomTags are extra span attributes: a literal value or a request
	// header's.
	CustomTags []CustomTag `toml:"custom_tags"`
	// MaxPathTagLength truncates the http.url attribute (default 256).
	MaxPathTagLength int `toml:"max_path_tag_length"`
	// OperationName is "ingress" (default: SERVER spans named "ingress")
	// or "egress" (CLIENT spans named "egress <authority>").
	OperationName string `toml:"operation_name"`
	// Provider is the tracer: only "opentelemetry" (OTLP/HTTP JSON).
	Provider Provider `toml:"provider"`
}

// CustomTag is one custom_tags entry: Tag with Literal, or with the value of
// the request header RequestHeader (DefaultValue when it is absent; no
// attribute when both are empty).
type CustomTag struct {
	Tag           string `toml:"tag"`
	Literal       string `toml:"literal"`
	RequestHeader string `toml:"request_header"`
	DefaultValue  string `toml:"default_value"`
}

// Provider is the tracer's table.
type Provider struct {
	// Name is "opentelemetry".
	Name string `toml:"name"`
	// CollectorEndpoint is the OTLP/HTTP traces URL, e.g.
	// "http://127.0.0.1:4318/v1/traces". Required.
	CollectorEndpoint string `toml:"collector_endpoint"`
	// ServiceName is the resource's service.name (default
	// "unknown_service:sluice").
	ServiceName string `toml:"service_name"`
	// Timeout bounds one export request (default 5s).
	Timeout config.Duration `toml:"timeout"`
	// FlushInterval is how often a worker sends the spans it has queued
	// (default 5s, Envoy's tracing.opentelemetry.flush_interval_ms).
	FlushInterval config.Duration `toml:"flush_interval"`
	// MinFlushSpans sends the queue as soon as it holds this many spans
	// (default 5, Envoy's tracing.opentelemetry.min_flush_spans).
	MinFlushSpans int `toml:"min_flush_spans"`
	// MaxQueuedSpans bounds a worker's queue: a span finished while it is
	// full is dropped and counted in spans_dropped (default 2048).
	MaxQueuedSpans int `toml:"max_queued_spans"`
}

// Defaults of the tracing table.
const (
	defaultMaxPathTagLength = 256
	defaultServiceName      = "unknown_service:sluice"
	defaultTimeout          = 5 * time.Second
	defaultFlushInterval    = 5 * time.Second
	defaultMinFlushSpans    = 5
	defaultMaxQueuedSpans   = 2048
)

func pct(p **float64) {
	if *p == nil {
		v := 100.0
		*p = &v
	}
}

// WithDefaults fills in the defaults.
func (c *Config) WithDefaults() {
	pct(&c.RandomSampling)
	pct(&c.ClientSampling)
	pct(&c.OverallSampling)
	for i := range c.CustomTags {
		c.CustomTags[i].RequestHeader = strings.ToLower(c.CustomTags[i].RequestHeader)
	}
	if c.MaxPathTagLength == 0 {
		c.MaxPathTagLength = defaultMaxPathTagLength
	}
	if c.OperationName == "" {
		c.OperationName = "ingress"
	}
	if c.Provider.ServiceName == "" {
		c.Provider.ServiceName = defaultServiceName
	}
	if c.Provider.Timeout.Duration == 0 {
		c.Provider.Timeout.Duration = defaultTimeout
	}
	if c.Provider.FlushInterval.Duration == 0 {
		c.Provider.FlushInterval.Duration = defaultFlushInterval
	}
	if c.Provider.MinFlushSpans == 0 {
		c.Provider.MinFlushSpans = defaultMinFlushSpans
	}
	if c.Provider.MaxQueuedSpans == 0 {
		c.Provider.MaxQueuedSpans = defaultMaxQueuedSpans
	}
}

// Validate checks a config with its defaults set; errors name the key
// under prefix (e.g. "tracing.").
func (c *Config) Validate(prefix string) error {
	for _, s := range []struct {
		key string
		v   float64
	}{{"random_sampling", *c.RandomSampling}, {"client_sampling", *c.ClientSampling}, {"overall_sampling", *c.OverallSampling}} {
		if !(s.v >= 0 && s.v <= 100) {
			return registry.Errorf(prefix+s.key, "must be a percentage in 0..100, not %v", s.v)
		}
	}
	switch {
	case c.MaxPathTagLength < 1:
		return registry.Errorf(prefix+"max_path_tag_length", "must be at least 1")
	case c.OperationName != "ingress" && c.OperationName != "egress":
		return registry.Errorf(prefix+"operation_name", "must be ingress or egress, not %q", c.OperationName)
	case c.Provider.Name != "opentelemetry":
		return registry.Errorf(prefix+"provider.name", "must be opentelemetry, not %q", c.Provider.Name)
	case c.Provider.Timeout.Duration < 0:
		return registry.Errorf(prefix+"provider.timeout", "must not be negative")
	case c.Provider.FlushInterval.Duration < time.Millisecond:
		return registry.Errorf(prefix+"provider.flush_interval", "must be at least 1ms")
	case c.Provider.MinFlushSpans < 1:
		return registry.Errorf(prefix+"provider.min_flush_spans", "must be at least 1")
	case c.Provider.MaxQueuedSpans < c.Provider.MinFlushSpans:
		return registry.Errorf(prefix+"provider.max_queued_spans", "must be at least min_flush_spans (%d)", c.Provider.MinFlushSpans)
	}
	u, err := url.Parse(c.Provider.CollectorEndpoint)
	if c.Provider.CollectorEndpoint == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return registry.Errorf(prefix+"provider.collector_endpoint", "must be an http:// or https:// URL, not %q", c.Provider.CollectorEndpoint)
	}
	for i, t := range c.CustomTags {
		key := fmt.Sprintf("%scustom_tags[%d]", prefix, i)
		switch {
		case t.Tag == "":
			return registry.Errorf(key+".tag", "required")
		case (t.Literal != "") == (t.RequestHeader != ""):
			return registry.Errorf(key, "needs exactly one of literal and request_header")
		case t.Literal != "" && t.DefaultValue != "":
			return registry.Errorf(key+".default_value", "only with request_header")
		}
	}
	return nil
}

// Stat names, Envoy's tracing.opentelemetry.* counters.
const (
	StatSpansSent         = "tracing.opentelemetry.spans_sent"
	StatSpansDropped      = "tracing.opentelemetry.spans_dropped"
	StatHTTPReportsSent   = "tracing.opentelemetry.http_reports_sent"
	StatHTTPReportsFailed = "tracing.opentelemetry.http_reports_failed"
)

// StatDefs are the tracer's counters (the same for every manager that
// traces: one exporter per worker serves them all).
func StatDefs() []stats.Def {
	names := []string{StatSpansSent, StatSpansDropped, StatHTTPReportsSent, StatHTTPReportsFailed}
	defs := make([]stats.Def, len(names))
	for i, n := range names {
		defs[i] = stats.Def{Name: n, Kind: stats.KindCounter}
	}
	return defs
}
