package lb

import (
	"math"
	"time"
)

// slowStart computes the share of its weight a host gets while it ramps up,
// as Envoy does: max(minWeight, (elapsed/window)^(1/aggression)), with
// elapsed at least 1 ms.
type slowStart struct {
	window time.Duration
	// exponent is 1/aggression.
	exponent  float64
	minWeight float64 // fraction of the weight
	now       func() time.Time
}

func newSlowStart(c SlowStartConfig, now func() time.Time) slowStart {
	s := slowStart{window: c.Window, exponent: 1, minWeight: DefaultMinWeightPercent / 100, now: now}
	if c.Aggression > 0 {
		s.exponent = 1 / c.Aggression
	}
	if c.MinWeightPercent != nil {
		s.minWeight = *c.MinWeightPercent / 100
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func (s *slowStart) enabled() bool { return s.window > 0 }

// factor returns the share of its weight a host that became eligible at
// since gets at now: 1 once the window has passed, or for the zero since.
func (s *slowStart) factor(since, now time.Time) float64 {
	if since.IsZero() {
		return 1
	}
	d := now.Sub(since)
	if d >= s.window {
		return 1
	}
	d = max(d, time.Millisecond)
	f := float64(d) / float64(s.window)
	if s.exponent != 1 {
		f = math.Pow(f, s.exponent)
	}
	return max(f, s.minWeight)
}
