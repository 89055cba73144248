package lb

import (
	"testing"
	"time"
)

// BenchmarkPick measures each policy's Pick over 16 weighted hosts, one of
// them unhealthy, with slow start on for round robin and least request.
func BenchmarkPick(b *testing.B) {
	for _, name := range []string{RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy} {
		b.Run(name, func(b *testing.B) {
			weights := make([]uint32, 16)
			for i := range weights {
				weights[i] = uint32(1 + i%3)
			}
			h := weightedHosts(weights...)
			h.setHealthy(5, false)
			h.setSince(7, time.Unix(1000, 0))
			clock := func() time.Time { return time.Unix(1030, 0) }
			p := mustNew(b, Config{Policy: name, SlowStart: SlowStartConfig{Window: time.Minute}, Now: clock}, h)
			req := &Request{HasHash: true}
			b.ReportAllocs()
			for b.Loop() {
				req.Hash += 0x9e3779b97f4a7c15
				p.Pick(req)
			}
		})
	}
}

// BenchmarkPickParallel measures Pick from every P at once (the atomic
// counter of round robin is the only shared write).
func BenchmarkPickParallel(b *testing.B) {
	for _, name := range []string{RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy} {
		b.Run(name, func(b *testing.B) {
			p := mustNew(b, Config{Policy: name}, newHosts(16))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := &Request{HasHash: true}
				for pb.Next() {
					req.Hash += 0x9e3779b97f4a7c15
					p.Pick(req)
				}
			})
		})
	}
}

// BenchmarkUpdate measures rebuilding each policy's structure for 100 hosts.
func BenchmarkUpdate(b *testing.B) {
	h := newHosts(100)
	for _, name := range []string{RoundRobinPolicy, RingHashPolicy, MaglevPolicy} {
		b.Run(name, func(b *testing.B) {
			p := mustNew(b, Config{Policy: name}, nil)
			b.ReportAllocs()
			for b.Loop() {
				p.Update(h)
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	key := []byte("session=3f2a9c1e-77b0-4d1e-9a53-0c6f1d2e8b44")
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	for b.Loop() {
		Hash(key, 0)
	}
}
