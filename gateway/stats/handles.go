package stats

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Slab is one writer's part of a region. Its handles are resolved once, at
// build time; recording through them is lock-free and allocation-free. A
// slab must have one writing process at a time (goroutines of that process
// may share handles freely).
type Slab struct {
	region *Region
	index  int // worker index; negative for reserved slabs
	words  []uint64
}

// Index returns the worker index of the slab (-1 for the server slab).
func (s *Slab) Index() int { return s.index }

// Counter is a handle on a counter slot. Methods are safe for concurrent use.
type Counter struct{ p *uint64 }

// Value returns this slab's count (not the aggregate).
func (c *Counter) Value() uint64 { return atomic.LoadUint64(c.p) }

// Gauge is a handle on a gauge slot. Methods are safe for concurrent use.
type Gauge struct {
	v    *int64
	used *uint64
}

// Value returns this slab's value (not the aggregate).
func (g *Gauge) Value() int64 { return atomic.LoadInt64(g.v) }

// Histogram is a handle on a histogram slot: NumBuckets bucket counts and
// the sum of recorded values in microseconds. Methods are safe for
// concurrent use.
type Histogram struct{ b *[histWords]uint64 }

// RecordMillis records a value given in milliseconds (Envoy's unit for
// *_ms and *_time histograms).
func (h *Histogram) RecordMillis(ms uint64) { h.Record(time.Duration(ms) * time.Millisecond) }

// Counter returns the handle of the named counter. An unknown name gets a
// handle on a private word that is never aggregated, so a misspelt name
// cannot crash the data plane; Has tells them apart. A nil slab gives
// private handles for every name.
func (s *Slab) Counter(name string) *Counter {
	if k, i, ok := s.lookup(name); ok && k == KindCounter {
		return &Counter{p: &s.words[s.region.wordOf(k, i)]}
	}
	return &Counter{p: new(uint64)}
}

// Gauge returns the handle of the named gauge (see Counter for unknown
// names).
func (s *Slab) Gauge(name string) *Gauge {
	if k, i, ok := s.lookup(name); ok && k == KindGauge {
		w := s.region.wordOf(k, i)
		return &Gauge{v: (*int64)(unsafe.Pointer(&s.words[w])), used: &s.words[w+1]}
	}
	return &Gauge{v: new(int64), used: new(uint64)}
}

// Histogram returns the handle of the named histogram (see Counter for
// unknown names).
func (s *Slab) Histogram(name string) *Histogram {
	if k, i, ok := s.lookup(name); ok && k == KindHistogram {
		w := s.region.wordOf(k, i)
		return &Histogram{b: (*[histWords]uint64)(s.words[w : w+histWords])}
	}
	return &Histogram{b: new([histWords]uint64)}
}

// lookup finds name in the schema; a nil slab (a build without a region,
// such as a test's) knows no names, so every handle is private.
func (s *Slab) lookup(name string) (Kind, int, bool) {
	if s == nil {
		return 0, 0, false
	}
	return s.region.schema.Lookup(name)
}

// Has reports whether the schema declares name with kind k.
func (s *Slab) Has(name string, k Kind) bool {
	kind, _, ok := s.region.schema.Lookup(name)
	return ok && kind == k
}
