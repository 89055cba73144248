package stats

import (
	"sort"
	"sync/atomic"
	"time"
)

// Stat is one aggregated stat of a Snapshot. Exactly one of Counter, Gauge
// and Histogram is meaningful, according to Def.Kind.
type Stat struct {
	Def       Def
	Counter   uint64
	Gauge     int64
	Histogram *HistogramValue
	// Used reports whether the stat was ever written (admin usedonly):
	// a counter or histogram that is not zero, a gauge that was ever set.
	Used bool
}

// HistogramValue is a merged histogram: bucket counts, their total, and the
// sum of recorded values.
type HistogramValue struct {
	Buckets [NumBuckets]uint64
	Count   uint64
	// Sum is the sum of recorded values.
	Sum time.Duration
}

// Quantile returns an estimate of quantile q (0 < q ≤ 1): the upper bound
// of the bucket holding it, minus one microsecond, so it is within 12.5 %
// above the true value. It returns 0 when the histogram is empty.
func (h *HistogramValue) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := uint64(q*float64(h.Count) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.Count {
		rank = h.Count
	}
	var seen uint64
	for i, n := range h.Buckets {
		seen += n
		if seen >= rank {
			lo, hi := bucketBounds(i)
			if hi-lo == 1 {
				return time.Duration(lo) * time.Microsecond
			}
			return time.Duration(hi-1) * time.Microsecond
		}
	}
	return 0
}

// Quantiles are the quantiles reported by every format.
var Quantiles = []float64{0.5, 0.9, 0.99, 0.999}

// QuantileNames label Quantiles in the text and JSON formats.
var QuantileNames = []string{"P50", "P90", "P99", "P99.9"}

// Snapshot is an aggregated view of a region at one moment, sorted by name.
type Snapshot []Stat

// Get returns the named stat.
func (s Snapshot) Get(name string) (Stat, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].Def.Name >= name })
	if i < len(s) && s[i].Def.Name == name {
		return s[i], true
	}
	return Stat{}, false
}

// Snapshot aggregates every slab: counters and histograms are the retired
// accumulator plus every slab minus the reset baseline; gauges are the sum
// over slabs (dead workers' gauges having been zeroed), or the largest
// value for a Def.Max gauge. It may run while
// workers record: each word is read atomically, but the snapshot is not a
// consistent cut across stats.
func (r *Region) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(Snapshot, len(r.schema.defs))
	sum := func(w int) uint64 {
		var v uint64
		for i, s := range r.slabs {
			if i != slabBaseline {
				v += atomic.LoadUint64(&s.words[w])
			}
		}
		if b := atomic.LoadUint64(&r.slabs[slabBaseline].words[w]); b < v {
			return v - b
		}
		return 0
	}
	for di := range r.schema.defs {
		d := r.schema.defs[di]
		k, idx, _ := r.schema.Lookup(d.Name)
		w := r.wordOf(k, idx)
		st := Stat{Def: d}
		switch k {
		case KindCounter:
			st.Counter = sum(w)
			st.Used = st.Counter != 0
		case KindGauge:
			for i, s := range r.slabs {
				if i == slabBaseline {
					continue
				}
				v := int64(atomic.LoadUint64(&s.words[w]))
				if d.Max {
					st.Gauge = max(st.Gauge, v)
				} else {
					st.Gauge += v
				}
				st.Used = st.Used || atomic.LoadUint64(&s.words[w+1]) != 0
			}
		case KindHistogram:
			h := &HistogramValue{}
			for b := 0; b < NumBuckets; b++ {
				h.Buckets[b] = sum(w + b)
				h.Count += h.Buckets[b]
			}
			h.Sum = time.Duration(sum(w+NumBuckets)) * time.Microsecond
			st.Histogram = h
			st.Used = h.Count != 0
		}
		out[di] = st
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Def.Name < out[j].Def.Name })
	return out
}

// Merge adds snapshots of several regions by name: while the workers of an
// older config generation drain, the supervisor shows their region's
// snapshot merged with the new one's (see Region.Inherit for afterwards).
// A name with different kinds in two snapshots keeps the first one's.
func Merge(snaps ...Snapshot) Snapshot {
	if len(snaps) == 1 {
		return snaps[0]
	}
	byName := map[string]int{}
	var out Snapshot
	for _, s := range snaps {
		for _, st := range s {
			i, ok := byName[st.Def.Name]
			if !ok {
				if st.Histogram != nil {
					h := *st.Histogram
					st.Histogram = &h
				}
				byName[st.Def.Name] = len(out)
				out = append(out, st)
				continue
			}
			m := &out[i]
			if m.Def.Kind != st.Def.Kind {
				continue
			}
			m.Counter += st.Counter
			// Either side says so: a region from an older binary (an
			// upgrade) has no Max in its schema.
			if m.Def.Max || st.Def.Max {
				m.Def.Max = true
				m.Gauge = max(m.Gauge, st.Gauge)
			} else {
				m.Gauge += st.Gauge
			}
			m.Used = m.Used || st.Used
			if st.Histogram != nil {
				for b := range st.Histogram.Buckets {
					m.Histogram.Buckets[b] += st.Histogram.Buckets[b]
				}
				m.Histogram.Count += st.Histogram.Count
				m.Histogram.Sum += st.Histogram.Sum
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Def.Name < out[j].Def.Name })
	return out
}
