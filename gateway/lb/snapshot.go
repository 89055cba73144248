package lb

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// maxTries bounds how many candidates a pick draws before it falls back to
// scanning for any eligible host.
const maxTries = 16

// snapshot is what every policy derives from one Update: the host list and
// its weight table. It is immutable.
type snapshot struct {
	hosts Hosts
	n     int
	// cum[i] is the sum of the weights of hosts 0..i; total is cum[n-1].
	cum   []uint64
	total uint64
	// equal is true when every host has the same weight.
	equal bool
	// stride is coprime with total: weighted round robin visits weight
	// positions c*stride mod total, which interleaves hosts.
	stride uint64
}

func newSnapshot(h Hosts) *snapshot {
	n := h.Len()
	s := &snapshot{hosts: h, n: n, cum: make([]uint64, n), equal: true}
	for i := range n {
		w := weight(h, i)
		s.total += w
		s.cum[i] = s.total
		if i > 0 && w != s.cum[0] {
			s.equal = false
		}
	}
	s.stride = coprimeStride(s.total)
	return s
}

func weight(h Hosts, i int) uint64 {
	return uint64(max(h.Weight(i), 1))
}

// coprimeStride returns the number nearest above total/φ that is coprime
// with total.
func coprimeStride(total uint64) uint64 {
	if total < 2 {
		return 1
	}
	s := max(uint64(float64(total)*0.6180339887498949), 1)
	for gcd(s, total) != 1 {
		s++
	}
	return s
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// locate returns the host whose weight range holds pos (< total).
func (s *snapshot) locate(pos uint64) int {
	lo, hi := 0, s.n-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.cum[mid] > pos {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// weightOf returns host i's weight.
func (s *snapshot) weightOf(i int) uint64 {
	if i == 0 {
		return s.cum[0]
	}
	return s.cum[i] - s.cum[i-1]
}

// sequential returns the host at step c of weighted round robin: every
// total steps, each host comes up weight times, interleaved.
func (s *snapshot) sequential(c uint64) int {
	if s.equal {
		return int(c % uint64(s.n))
	}
	hi, lo := bits.Mul64(c%s.total, s.stride)
	return s.locate(bits.Rem64(hi, lo, s.total))
}

// weightedRandom returns a host drawn in proportion to weight.
func (s *snapshot) weightedRandom() int {
	if s.equal {
		return int(rand.Uint64N(uint64(s.n)))
	}
	return s.locate(rand.Uint64N(s.total))
}

// scan returns the first eligible host from start on, ignoring slow start,
// or -1.
func (s *snapshot) scan(start int, all bool) int {
	for k := range s.n {
		i := (start + k) % s.n
		if all || s.hosts.Healthy(i) {
			return i
		}
	}
	return -1
}

// settings are the knobs every policy shares.
type settings struct {
	// panicThreshold is in percent.
	panicThreshold float64
	slow           slowStart
}

func newSettings(cfg *Config) settings {
	c := settings{panicThreshold: DefaultPanicThreshold, slow: newSlowStart(cfg.SlowStart, cfg.Now)}
	if cfg.PanicThreshold != nil {
		c.panicThreshold = *cfg.PanicThreshold
	}
	return c
}

// common is settings plus the current snapshot, for the policies that need
// nothing else (ring hash and maglev keep theirs with their structure).
type common struct {
	settings
	snap atomic.Pointer[snapshot]
}

// begin loads the snapshot and decides the mode of a pick (see mode).
func (c *common) begin() (s *snapshot, all, ok bool) {
	s = c.snap.Load()
	all, ok = c.mode(s)
	return s, all, ok
}

// mode decides how to pick from s: all is true in panic mode (every host is
// eligible); ok is false when no host can be picked.
func (c *settings) mode(s *snapshot) (all, ok bool) {
	if s == nil || s.n == 0 {
		return false, false
	}
	healthy := s.hosts.HealthyLen()
	if float64(healthy)*100 < c.panicThreshold*float64(s.n) {
		return true, true
	}
	return false, healthy > 0
}

// accept reports whether candidate i may be picked: it must be healthy
// (unless all), and a healthy host in slow start passes with probability
// equal to its slow-start factor, so that hosts are picked in proportion
// to their effective weight.
func (c *settings) accept(s *snapshot, i int, all bool, now time.Time) bool {
	if !s.hosts.Healthy(i) {
		return all
	}
	if !c.slow.enabled() {
		return true
	}
	f := c.slow.factor(s.hosts.Since(i), now)
	return f >= 1 || rand.Float64() < f
}

// now returns the time for slow start, or the zero time when it is off.
func (c *settings) now() time.Time {
	if !c.slow.enabled() {
		return time.Time{}
	}
	return c.slow.now()
}
