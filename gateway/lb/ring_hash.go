package lb

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
)

// ringHash is Envoy's ketama-style consistent hash: each host owns points on
// a ring of 64-bit hashes, as many as its share of the weight asks (at least
// minimum_ring_size points in all, at most maximum_ring_size), at the
// xxHash64 of "address_k" for k = 0, 1, .... A request goes to the host of
// the first point at or after its hash. An unhealthy host's requests move to
// the next healthy point, so other hosts keep theirs.
type ringHash struct {
	settings
	min, max uint64
	ring     atomic.Pointer[ring]
}

// ring is the sorted ring of one Update: point hashes[k] belongs to host
// hosts[k] (two slices: the binary search touches only hashes).
type ring struct {
	snap   *snapshot
	hashes []uint64
	hosts  []int32
}

var _ Policy = (*ringHash)(nil)

func newRingHash(c settings, cfg RingHashConfig) *ringHash {
	p := &ringHash{settings: c, min: DefaultMinimumRingSize, max: DefaultMaximumRingSize}
	if cfg.MinimumRingSize > 0 {
		p.min = cfg.MinimumRingSize
	}
	if cfg.MaximumRingSize > 0 {
		p.max = cfg.MaximumRingSize
	}
	p.min = min(p.min, p.max)
	return p
}

// Update implements Policy. It builds the ring: O(size log size).
func (p *ringHash) Update(h Hosts) {
	s := newSnapshot(h)
	r := &ring{snap: s}
	if s.n > 0 {
		// Envoy: scale so that the lightest host gets at least one point
		// and the ring has at least min points, capped at max.
		minNorm := float64(math.MaxUint64)
		for i := range s.n {
			minNorm = min(minNorm, float64(s.weightOf(i))/float64(s.total))
		}
		scale := min(math.Ceil(minNorm*float64(p.min))/minNorm, float64(p.max))
		size := int(math.Ceil(scale))
		points := make([]point, 0, size)
		var key []byte
		current, target := 0.0, 0.0
		for i := range s.n {
			key = append(append(key[:0], h.Address(i)...), '_')
			prefix := len(key)
			target += scale * float64(s.weightOf(i)) / float64(s.total)
			for k := uint64(0); current < target; k++ {
				key = strconv.AppendUint(key[:prefix], k, 10)
				points = append(points, point{hash: Hash(key, 0), host: int32(i)})
				current++
			}
		}
		slices.SortFunc(points, func(a, b point) int {
			if c := cmp.Compare(a.hash, b.hash); c != 0 {
				return c
			}
			return cmp.Compare(a.host, b.host)
		})
		r.hashes = make([]uint64, len(points))
		r.hosts = make([]int32, len(points))
		for k, pt := range points {
			r.hashes[k], r.hosts[k] = pt.hash, pt.host
		}
	}
	p.ring.Store(r)
}

type point struct {
	hash uint64
	host int32
}

// Pick implements Policy.
func (p *ringHash) Pick(req *Request) int {
	r := p.ring.Load()
	if r == nil {
		return -1
	}
	all, ok := p.mode(r.snap)
	n := len(r.hashes)
	if !ok || n == 0 {
		return -1
	}
	h := requestHash(req)
	// First point at or after h, wrapping to the start.
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.hashes[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	var d distinct
	attempt := attemptOf(req)
	for k := range n {
		i := int(r.hosts[(lo+k)%n])
		if (all || r.snap.hosts.Healthy(i)) && d.next(i, attempt) {
			return i
		}
	}
	return d.last()
}

// attemptOf returns r's host selection attempt (0 for none).
func attemptOf(r *Request) int {
	if r == nil {
		return 0
	}
	return int(min(r.Attempt, maxAttempt))
}

// maxAttempt bounds the distinct hosts a retry's pick walks past.
const maxAttempt = 7

// distinct counts the distinct eligible hosts a hash-based pick walks
// past, for a retry's host selection attempt. It allocates nothing.
type distinct struct {
	seen [maxAttempt]int
	n    int
}

// next reports whether eligible host i is the one to pick for attempt: the
// attempt-th distinct host met after the first (the first for attempt 0).
func (d *distinct) next(i, attempt int) bool {
	if attempt == 0 {
		return true
	}
	for _, j := range d.seen[:d.n] {
		if j == i {
			return false
		}
	}
	if d.n == attempt {
		return true
	}
	d.seen[d.n] = i
	d.n++
	return false
}

// last returns the last distinct host met (fewer eligible hosts than the
// attempt asked to pass), or -1.
func (d *distinct) last() int {
	if d.n == 0 {
		return -1
	}
	return d.seen[d.n-1]
}

// requestHash returns the request's hash, or a random one.
func requestHash(r *Request) uint64 {
	if r != nil && r.HasHash {
		return r.Hash
	}
	return rand.Uint64()
}
