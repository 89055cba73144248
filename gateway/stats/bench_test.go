package stats

import (
	"testing"
	"time"
)

func BenchmarkCounterInc(b *testing.B) {
	r := makeRegion(b, testSchema(b), 1)
	c := r.Slab(0).Counter("http.ingress.downstream_rq_total")
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkGaugeAdd(b *testing.B) {
	r := makeRegion(b, testSchema(b), 1)
	g := r.Slab(0).Gauge("http.ingress.downstream_rq_active")
	b.ReportAllocs()
	for b.Loop() {
		g.Inc()
		g.Dec()
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	r := makeRegion(b, testSchema(b), 1)
	h := r.Slab(0).Histogram("http.ingress.downstream_rq_time")
	b.ReportAllocs()
	d := 1234 * time.Microsecond
	for b.Loop() {
		h.Record(d)
	}
}

// BenchmarkPerRequest is every stat update the data plane makes for one
// proxied request on a new connection.
func BenchmarkPerRequest(b *testing.B) {
	r := makeRegion(b, testSchema(b), 1)
	s := r.Slab(0)
	l, h, c := s.Listener("127.0.0.1:8080"), s.HTTP("ingress"), s.Cluster("backend")
	b.ReportAllocs()
	for b.Loop() {
		l.DownstreamCxTotal.Inc()
		l.DownstreamCxActive.Inc()
		h.DownstreamCxTotal.Inc()
		h.DownstreamRqTotal.Inc()
		h.DownstreamRqActive.Inc()
		c.UpstreamRqTotal.Inc()
		c.UpstreamRqActive.Inc()
		c.UpstreamRqTime.Record(800 * time.Microsecond)
		c.Response(200)
		c.UpstreamRqActive.Dec()
		h.Response(200)
		h.DownstreamRqTime.Record(time.Millisecond)
		h.DownstreamRqActive.Dec()
		l.DownstreamCxActive.Dec()
		l.DownstreamCxLengthMs.Record(time.Millisecond)
	}
}

func BenchmarkSnapshot(b *testing.B) {
	r := makeRegion(b, testSchema(b), 8)
	b.ReportAllocs()
	for b.Loop() {
		r.Snapshot()
	}
}
