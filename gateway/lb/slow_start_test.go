package lb

import (
	"math"
	"sync/atomic"
	"testing"
	"time"
)

func TestSlowStartFactorFollowsEnvoysRamp(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	window := 10 * time.Second
	for _, tc := range []struct {
		name    string
		cfg     SlowStartConfig
		since   time.Time
		elapsed time.Duration
		want    float64
	}{
		{"zero since is not in slow start", SlowStartConfig{Window: window}, time.Time{}, 0, 1},
		{"just joined gets the minimum weight", SlowStartConfig{Window: window}, t0, 0, 0.10},
		{"linear at half window", SlowStartConfig{Window: window}, t0, 5 * time.Second, 0.5},
		{"below the minimum weight", SlowStartConfig{Window: window}, t0, 500 * time.Millisecond, 0.10},
		{"window over", SlowStartConfig{Window: window}, t0, window, 1},
		{"aggression 2 ramps faster", SlowStartConfig{Window: window, Aggression: 2}, t0, 5 * time.Second, math.Sqrt(0.5)},
		{"aggression 0.5 ramps slower", SlowStartConfig{Window: window, Aggression: 0.5, MinWeightPercent: ptr(1.0)}, t0, 5 * time.Second, 0.25},
		{"min weight 0 keeps 1 ms", SlowStartConfig{Window: window, MinWeightPercent: ptr(0.0)}, t0, 0, 0.0001},
		{"clock behind since", SlowStartConfig{Window: window}, t0, -time.Second, 0.10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSlowStart(tc.cfg, nil)
			if got := s.factor(tc.since, t0.Add(tc.elapsed)); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("factor = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSlowStartRampsNewHostTraffic(t *testing.T) {
	const n = 40000
	t0 := time.Unix(1_700_000_000, 0)
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	for _, name := range []string{RoundRobinPolicy, LeastRequestPolicy} {
		t.Run(name, func(t *testing.T) {
			h := newHosts(2)
			h.setSince(1, t0) // host 1 joined at t0; host 0 was there from the start
			p := mustNew(t, Config{Policy: name, SlowStart: SlowStartConfig{Window: 60 * time.Second}, Now: clock}, h)
			for _, step := range []struct {
				at   time.Duration
				want float64 // host 1's share: f/(1+f)
			}{
				{0, 0.1 / 1.1},
				{15 * time.Second, 0.25 / 1.25},
				{30 * time.Second, 0.5 / 1.5},
				{45 * time.Second, 0.75 / 1.75},
				{60 * time.Second, 0.5},
			} {
				now.Store(t0.Add(step.at).UnixNano())
				got := counts(t, p, 2, n, nil)
				near(t, "new host at "+step.at.String(), got[1], n, step.want, 0.015)
			}
		})
	}
}
