package lb

import (
	"fmt"
	"math"
	"time"
)

// The lb_policy names New accepts.
const (
	// RoundRobinPolicy is weighted round robin, the default.
	RoundRobinPolicy = "round_robin"
	// LeastRequestPolicy is least request by power of two choices.
	LeastRequestPolicy = "least_request"
	// RandomPolicy is uniform random.
	RandomPolicy = "random"
	// RingHashPolicy is ketama-style consistent hashing.
	RingHashPolicy = "ring_hash"
	// MaglevPolicy is Maglev consistent hashing.
	MaglevPolicy = "maglev"
)

// Envoy's defaults and limits.
const (
	// DefaultPanicThreshold is the healthy percentage below which a policy
	// picks among all hosts.
	DefaultPanicThreshold = 50.0
	// DefaultMinimumRingSize is the fewest points on a hash ring.
	DefaultMinimumRingSize = 1024
	// DefaultMaximumRingSize caps a hash ring; it is also the largest
	// maximum accepted.
	DefaultMaximumRingSize = 8 << 20
	// DefaultMaglevTableSize is the maglev lookup table size (a prime).
	DefaultMaglevTableSize = 65537
	// MaxMaglevTableSize is the largest table size accepted.
	MaxMaglevTableSize = 5000011
	// DefaultChoiceCount is how many hosts least request compares.
	DefaultChoiceCount = 2
	// DefaultActiveRequestBias is least request's bias for weighted hosts.
	DefaultActiveRequestBias = 1.0
	// DefaultSlowStartAggression makes the slow-start ramp linear.
	DefaultSlowStartAggression = 1.0
	// DefaultMinWeightPercent is the smallest share of its weight a host in
	// slow start gets.
	DefaultMinWeightPercent = 10.0
)

// Config selects and tunes a policy. The zero value is round robin with
// Envoy's defaults; each field documents its zero value.
type Config struct {
	// Policy is one of round_robin (also ""), least_request, random,
	// ring_hash and maglev.
	Policy string
	// PanicThreshold is the percentage of healthy hosts below which the
	// policy picks among all hosts. nil means 50; 0 disables panic mode.
	PanicThreshold *float64
	// RingHash tunes ring_hash.
	RingHash RingHashConfig
	// Maglev tunes maglev.
	Maglev MaglevConfig
	// LeastRequest tunes least_request.
	LeastRequest LeastRequestConfig
	// SlowStart ramps new hosts up (round_robin and least_request only).
	SlowStart SlowStartConfig
	// Now returns the current time for slow start; nil means time.Now.
	Now func() time.Time
}

// RingHashConfig tunes ring_hash.
type RingHashConfig struct {
	// MinimumRingSize is the fewest entries on the ring: more entries
	// spread load more evenly. 0 means 1024.
	MinimumRingSize uint64
	// MaximumRingSize caps the ring. 0 means 8M (8388608), the largest
	// accepted.
	MaximumRingSize uint64
}

// MaglevConfig tunes maglev.
type MaglevConfig struct {
	// TableSize is the lookup table size; it must be prime, and should be
	// much larger than the number of hosts (100 times keeps the imbalance
	// under 1 %). 0 means 65537.
	TableSize uint64
}

// LeastRequestConfig tunes least_request.
type LeastRequestConfig struct {
	// ChoiceCount is how many random hosts are compared. 0 means 2.
	ChoiceCount uint32
	// ActiveRequestBias applies when weights differ: a host's effective
	// weight is weight / (active+1)^bias. 0 picks by weight alone; nil
	// means 1.0.
	ActiveRequestBias *float64
}

// SlowStartConfig ramps the traffic of a host that just joined or became
// healthy: its weight is scaled by max(min_weight_percent,
// (elapsed/window)^(1/aggression)) until window has elapsed.
type SlowStartConfig struct {
	// Window is the ramp's length; 0 disables slow start.
	Window time.Duration
	// Aggression shapes the ramp (> 1 ramps faster early). 0 means 1.0
	// (linear).
	Aggression float64
	// MinWeightPercent is the smallest share of its weight, in percent, a
	// host in slow start gets. nil means 10.
	MinWeightPercent *float64
}

func (c *Config) validate() error {
	switch c.Policy {
	case "", RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy:
	default:
		return fmt.Errorf("%w %q", ErrUnknownPolicy, c.Policy)
	}
	if p := c.PanicThreshold; p != nil && !(*p >= 0 && *p <= 100) {
		return fmt.Errorf("lb: panic_threshold %v: must be within [0, 100]", *p)
	}
	r := c.RingHash
	if r.MinimumRingSize > DefaultMaximumRingSize || r.MaximumRingSize > DefaultMaximumRingSize {
		return fmt.Errorf("lb: ring_hash: ring sizes must be at most %d", DefaultMaximumRingSize)
	}
	if r.MinimumRingSize != 0 && r.MaximumRingSize != 0 && r.MinimumRingSize > r.MaximumRingSize {
		return fmt.Errorf("lb: ring_hash: minimum_ring_size %d > maximum_ring_size %d", r.MinimumRingSize, r.MaximumRingSize)
	}
	if t := c.Maglev.TableSize; t != 0 && (t > MaxMaglevTableSize || !isPrime(t)) {
		return fmt.Errorf("lb: maglev: table_size %d: must be a prime at most %d", t, MaxMaglevTableSize)
	}
	if b := c.LeastRequest.ActiveRequestBias; b != nil && !(*b >= 0 && !math.IsInf(*b, 1)) {
		return fmt.Errorf("lb: least_request: active_request_bias %v: must be >= 0", *b)
	}
	s := c.SlowStart
	if s.Window < 0 {
		return fmt.Errorf("lb: slow_start: window %v: must be >= 0", s.Window)
	}
	if !(s.Aggression >= 0 && !math.IsInf(s.Aggression, 1)) {
		return fmt.Errorf("lb: slow_start: aggression %v: must be > 0", s.Aggression)
	}
	if p := s.MinWeightPercent; p != nil && !(*p >= 0 && *p <= 100) {
		return fmt.Errorf("lb: slow_start: min_weight_percent %v: must be within [0, 100]", *p)
	}
	return nil
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
