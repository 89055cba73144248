package hcm

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/tracing"
)

// BenchmarkStreamSpan is what tracing adds to each request of a manager:
// without a tracing table (one nil check at the start and at the end of
// the stream) and with one whose random_sampling is 0 (the decision and the
// upstream traceparent, nothing exported; the sampled cost is
// BenchmarkStartFinish in gateway/tracing).
func BenchmarkStreamSpan(b *testing.B) {
	zero := 0.0
	cfg := &tracing.Config{RandomSampling: &zero, Provider: tracing.Provider{Name: "opentelemetry", CollectorEndpoint: "http://127.0.0.1:9/v1/traces"}}
	cfg.WithDefaults()
	for _, bc := range []struct {
		name   string
		tracer *tracing.Tracer
	}{{"untraced", nil}, {"traced_unsampled", tracing.New(cfg, "http.bench.", nil, nil)}} {
		b.Run(bc.name, func(b *testing.B) {
			s := &stream{conn: &connection{f: &Factory{tracer: bc.tracer}}}
			h := &httpfilter.RequestHeaders{Method: []byte("GET"), Scheme: []byte("http"), Authority: []byte("a.test"), Path: []byte("/")}
			h.Add("x-request-id", "8a4b1c6e-2f0d-4b9a-9c3e-5d7f1a2b3c4d")
			s.h = h
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				s.startSpan(h)
				s.finishSpan(now)
			}
		})
	}
}
