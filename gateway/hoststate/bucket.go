package hoststate

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Bucket payload words of a bucket-set slot.
const (
	bOff      = iota // first arena word
	bLen             // number of buckets
	bMax             // spec, to detect a key reused with another spec
	bPerFill         //
	bInterval        //
)

// MinFillInterval is the shortest fill interval a bucket accepts. With the
// last-fill time kept as a 32-bit count of intervals, a bucket left
// untouched for 2^32 intervals (6.8 years at this minimum) could refill
// less than it should; nothing else depends on wrap-around.
const MinFillInterval = time.Millisecond

// BucketSpec is a token bucket's shape (Envoy's TokenBucket): it holds at
// most MaxTokens, and gains TokensPerFill every FillInterval.
type BucketSpec struct {
	MaxTokens     uint32
	TokensPerFill uint32
	FillInterval  time.Duration
}

// Validate checks the spec.
func (s BucketSpec) Validate() error {
	switch {
	case s.MaxTokens == 0:
		return errors.New("max_tokens: must be >= 1")
	case s.TokensPerFill == 0:
		return errors.New("tokens_per_fill: must be >= 1")
	case s.FillInterval < MinFillInterval:
		return fmt.Errorf("fill_interval: must be >= %v", MinFillInterval)
	}
	return nil
}

// Buckets is a set of token buckets with one spec: one bucket per
// descriptor value, chosen by index. It is immutable and safe for
// concurrent use; Take is lock-free and allocation-free.
type Buckets struct {
	words    []uint64 // tokens | last fill tick<<32, one word per bucket
	spec     BucketSpec
	interval int64
	epoch    int64 // unix ns that tick 0 starts
}

// Len returns the number of buckets.
func (b *Buckets) Len() int { return len(b.words) }

// Spec returns the buckets' spec.
func (b *Buckets) Spec() BucketSpec { return b.spec }

func (b *Buckets) tick(now time.Time) uint32 {
	return uint32((now.UnixNano() - b.epoch) / b.interval)
}

func (b *Buckets) fill(now time.Time) {
	full := uint64(b.tick(now))<<32 | uint64(b.spec.MaxTokens)
	for i := range b.words {
		atomic.StoreUint64(&b.words[i], full)
	}
}

// Take takes n tokens from bucket i (0 ≤ i < Len()) at time now. It
// reports whether it did, the tokens left, and the time until the bucket
// next gains tokens (for x-ratelimit-reset). A bucket starts full and
// refills by TokensPerFill at each FillInterval boundary (measured from the
// region's creation, so all processes agree), never above MaxTokens.
//
// The state is one word, tokens and last-fill tick, updated with
// compare-and-swap: concurrent takers in any process never take more tokens
// than the bucket holds. A clock that steps back leaves the bucket as is.
func (b *Buckets) Take(i int, n uint32, now time.Time) (ok bool, remaining uint32, reset time.Duration) {
	w := &b.words[i]
	cur := b.tick(now)
	reset = time.Duration(b.epoch + (int64(cur)+1)*b.interval - now.UnixNano())
	for {
		old := atomic.LoadUint64(w)
		tokens, last := uint32(old), uint32(old>>32)
		if el := cur - last; int32(el) > 0 {
			t := uint64(tokens) + uint64(el)*uint64(b.spec.TokensPerFill)
			tokens = uint32(min(t, uint64(b.spec.MaxTokens)))
			last = cur
		}
		if tokens < n {
			if last != uint32(old>>32) {
				atomic.CompareAndSwapUint64(w, old, uint64(last)<<32|uint64(tokens))
			}
			return false, tokens, reset
		}
		tokens -= n
		if atomic.CompareAndSwapUint64(w, old, uint64(last)<<32|uint64(tokens)) {
			return true, tokens, reset
		}
	}
}

// NewLocalBuckets returns n full buckets in this process's memory, for a
// limiter that has no region (tests, or a build without shared state).
func NewLocalBuckets(n int, spec BucketSpec) (*Buckets, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("hoststate: %w", err)
	}
	if n < 1 {
		return nil, fmt.Errorf("hoststate: bucket count %d must be >= 1", n)
	}
	b := &Buckets{words: make([]uint64, n), spec: spec, interval: int64(spec.FillInterval), epoch: time.Now().UnixNano()}
	b.fill(time.Now())
	return b, nil
}

// AddBuckets returns the bucket set of key, creating n full buckets of spec
// if the key does not exist. An existing set with another size or spec is
// an error: include the spec in the key (a changed limit then gets fresh
// buckets, as a rebuilt Envoy filter does) or retire the old key first.
func (r *Region) AddBuckets(key string, n int, spec BucketSpec) (*Buckets, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("hoststate: buckets %q: %w", key, err)
	}
	if n < 1 || n > r.arenaN {
		return nil, fmt.Errorf("hoststate: buckets %q: count %d out of range 1..%d", key, n, r.arenaN)
	}
	k, hash, err := makeKey(kindBuckets, key, "")
	if err != nil {
		return nil, err
	}
	r.lock()
	defer r.unlock()
	i, created, err := r.add(kindBuckets, &k, hash, func(p []uint64) error {
		off, err := r.allocArena(n)
		if err != nil {
			return err
		}
		atomic.StoreUint64(&p[bOff], uint64(off))
		atomic.StoreUint64(&p[bLen], uint64(n))
		atomic.StoreUint64(&p[bMax], uint64(spec.MaxTokens))
		atomic.StoreUint64(&p[bPerFill], uint64(spec.TokensPerFill))
		atomic.StoreUint64(&p[bInterval], uint64(spec.FillInterval))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hoststate: buckets %q: %w", key, err)
	}
	b, err := r.buckets(i)
	if err != nil {
		return nil, fmt.Errorf("hoststate: buckets %q: %w", key, err)
	}
	if b.Len() != n || b.spec != spec {
		return nil, fmt.Errorf("hoststate: buckets %q: exist with another size or spec", key)
	}
	if created {
		b.fill(time.Now())
	}
	return b, nil
}

// LookupBuckets returns the live bucket set of key, or nil. It takes no
// lock.
func (r *Region) LookupBuckets(key string) *Buckets {
	k, hash, err := makeKey(kindBuckets, key, "")
	if err != nil {
		return nil
	}
	i := r.find(&k, hash)
	if i < 0 {
		return nil
	}
	b, err := r.buckets(i)
	if err != nil {
		return nil
	}
	return b
}

func (r *Region) buckets(i int) (*Buckets, error) {
	p := r.slot(i)[payloadWord:]
	off, n := atomic.LoadUint64(&p[bOff]), atomic.LoadUint64(&p[bLen])
	if off+n > uint64(r.arenaN) || n == 0 {
		return nil, ErrBadRegion
	}
	spec := BucketSpec{
		MaxTokens:     uint32(atomic.LoadUint64(&p[bMax])),
		TokensPerFill: uint32(atomic.LoadUint64(&p[bPerFill])),
		FillInterval:  time.Duration(atomic.LoadUint64(&p[bInterval])),
	}
	if spec.Validate() != nil {
		return nil, ErrBadRegion
	}
	return &Buckets{words: r.arena[off : off+n], spec: spec, interval: int64(spec.FillInterval), epoch: r.epoch}, nil
}

// allocArena returns n arena words: those of a dead bucket set of at least
// n words if there is one (whose slot then forgets them), else fresh ones.
// Call with the lock held.
func (r *Region) allocArena(n int) (int, error) {
	for i := 0; i < r.slots; i++ {
		s := r.slot(i)
		w := atomic.LoadUint64(&s[0])
		if state(w) != stateDead || uint8(w>>8) != kindBuckets {
			continue
		}
		p := s[payloadWord:]
		if atomic.LoadUint64(&p[bLen]) >= uint64(n) {
			off := atomic.LoadUint64(&p[bOff])
			atomic.StoreUint64(&p[bLen], 0)
			return int(off), nil
		}
	}
	next := r.hdr(hdrNext)
	off := atomic.LoadUint64(next)
	if off+uint64(n) > uint64(r.arenaN) {
		return 0, ErrFull
	}
	atomic.StoreUint64(next, off+uint64(n))
	return int(off), nil
}
