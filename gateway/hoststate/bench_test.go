package hoststate

import (
	"testing"
	"time"
)

func BenchmarkBucketTake(b *testing.B) {
	r := newRegion(b, Options{Slots: 8, Workers: 1, ArenaWords: 8})
	bk, err := r.AddBuckets("k", 1, BucketSpec{MaxTokens: 1 << 30, TokensPerFill: 1 << 30, FillInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Take(0, 1, now)
		}
	})
}

func BenchmarkBreakerAcquireRelease(b *testing.B) {
	r := newRegion(b, Options{Slots: 8, Workers: 1, ArenaWords: 1})
	c, _ := r.AddCluster("c", 0)
	br := c.Breaker(Requests)
	b.ReportAllocs()
	for b.Loop() {
		if br.TryAcquire(1024) {
			br.Release()
		}
	}
}

func BenchmarkHostRecordResult(b *testing.B) {
	r := newRegion(b, Options{Slots: 8, Workers: 1, ArenaWords: 1})
	h, _ := r.AddHost("c", "a:1", 0)
	b.ReportAllocs()
	for b.Loop() {
		h.RecordResult(ResultSuccess)
	}
}

func BenchmarkHostHealthy(b *testing.B) {
	r := newRegion(b, Options{Slots: 8, Workers: 1, ArenaWords: 1})
	h, _ := r.AddHost("c", "a:1", 0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if h.Healthy() {
			n++
		}
	}
	_ = n
}
