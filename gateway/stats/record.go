//go:build !nostats

package stats

import (
	"sync/atomic"
	"time"
)

// Recording. Building with the tag nostats turns every method of this file
// into a no-op (record_nostats.go), so that a benchmark can measure what
// stats cost the data plane: the same binary with and without them.

// Inc adds one.
func (c *Counter) Inc() { atomic.AddUint64(c.p, 1) }

// Add adds n.
func (c *Counter) Add(n uint64) { atomic.AddUint64(c.p, n) }

func (g *Gauge) touch() {
	if atomic.LoadUint64(g.used) == 0 {
		atomic.StoreUint64(g.used, 1)
	}
}

// Inc adds one.
func (g *Gauge) Inc() { g.touch(); atomic.AddInt64(g.v, 1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.touch(); atomic.AddInt64(g.v, -1) }

// Add adds n.
func (g *Gauge) Add(n int64) { g.touch(); atomic.AddInt64(g.v, n) }

// Sub subtracts n.
func (g *Gauge) Sub(n int64) { g.touch(); atomic.AddInt64(g.v, -n) }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.touch(); atomic.StoreInt64(g.v, n) }

// Record records one duration (negative counts as 0), with microsecond
// resolution.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	atomic.AddUint64(&h.b[bucketOf(us)], 1)
	atomic.AddUint64(&h.b[NumBuckets], us)
}
