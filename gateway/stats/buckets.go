package stats

import "math/bits"

// Histograms record microseconds in log-linear buckets: values 0..7 have a
// bucket each, and every power of two above is split into subBuckets equal
// buckets, so a bucket's width is at most 1/8 of its lower bound (quantiles
// are within 12.5 %). The last bucket also holds everything from about 19
// hours up.
const (
	subBits    = 3
	subBuckets = 1 << subBits
	maxExp     = 35 // values below 2^36 µs have a bucket of their own
	// NumBuckets is the number of buckets of a histogram.
	NumBuckets = (maxExp-subBits+1)*subBuckets + subBuckets
	// histWords is a histogram's size in a slab: the buckets and the sum.
	histWords = NumBuckets + 1
)

// bucketOf returns the bucket of a value in microseconds.
func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	e := bits.Len64(us) - 1
	if e > maxExp {
		return NumBuckets - 1
	}
	sub := int(us>>(e-subBits)) & (subBuckets - 1)
	return (e-subBits+1)*subBuckets + sub
}

// bucketBounds returns the range [lo, hi) of a bucket, in microseconds.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i) + 1
	}
	e := i/subBuckets - 1 + subBits
	sub := uint64(i % subBuckets)
	lo = (subBuckets + sub) << (e - subBits)
	hi = (subBuckets + sub + 1) << (e - subBits)
	return lo, hi
}
