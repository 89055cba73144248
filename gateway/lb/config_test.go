package lb

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown policy", Config{Policy: "weighted_least_fun"}, `lb: unknown lb_policy "weighted_least_fun"`},
		{"panic threshold above 100", Config{PanicThreshold: ptr(101.0)}, "panic_threshold 101"},
		{"negative panic threshold", Config{PanicThreshold: ptr(-1.0)}, "panic_threshold -1"},
		{"ring min above max", Config{Policy: RingHashPolicy, RingHash: RingHashConfig{MinimumRingSize: 4096, MaximumRingSize: 2048}}, "minimum_ring_size 4096 > maximum_ring_size 2048"},
		{"ring above 8M", Config{Policy: RingHashPolicy, RingHash: RingHashConfig{MaximumRingSize: 8<<20 + 1}}, "at most 8388608"},
		{"maglev not prime", Config{Policy: MaglevPolicy, Maglev: MaglevConfig{TableSize: 65536}}, "table_size 65536: must be a prime"},
		{"maglev too large", Config{Policy: MaglevPolicy, Maglev: MaglevConfig{TableSize: 5000077}}, "must be a prime at most 5000011"},
		{"negative bias", Config{Policy: LeastRequestPolicy, LeastRequest: LeastRequestConfig{ActiveRequestBias: ptr(-0.5)}}, "active_request_bias -0.5"},
		{"negative window", Config{SlowStart: SlowStartConfig{Window: -time.Second}}, "window -1s"},
		{"negative aggression", Config{SlowStart: SlowStartConfig{Window: time.Second, Aggression: -1}}, "aggression -1"},
		{"min weight above 100", Config{SlowStart: SlowStartConfig{Window: time.Second, MinWeightPercent: ptr(150.0)}}, "min_weight_percent 150"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want error containing %q", p, err, tc.want)
			}
		})
	}
	if _, err := New(Config{Policy: "nope"}); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("unknown policy error %v is not ErrUnknownPolicy", err)
	}
}

func TestEveryPolicyHandlesNoHosts(t *testing.T) {
	for _, name := range []string{"", RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy} {
		t.Run(name, func(t *testing.T) {
			p := mustNew(t, Config{Policy: name}, nil)
			if i := p.Pick(nil); i != -1 {
				t.Errorf("pick before Update = %d, want -1", i)
			}
			p.Update(newHosts(0))
			if i := p.Pick(keyed(1)); i != -1 {
				t.Errorf("pick with no host = %d, want -1", i)
			}
			p.Update(newHosts(3))
			if i := p.Pick(keyed(1)); i < 0 || i > 2 {
				t.Errorf("pick after Update = %d, want a host", i)
			}
		})
	}
}

func TestEveryPolicySkipsUnhealthyHostsAndPanicsBelowThreshold(t *testing.T) {
	for _, name := range []string{RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy} {
		t.Run(name, func(t *testing.T) {
			h := newHosts(4)
			h.setHealthy(1, false)
			p := mustNew(t, Config{Policy: name}, h)
			got := counts(t, p, 4, 4000, keyed)
			if got[1] != 0 {
				t.Errorf("75%% healthy: unhealthy host 1 got %d picks, want 0 (%v)", got[1], got)
			}
			for _, i := range []int{0, 2, 3} {
				if got[i] == 0 {
					t.Errorf("75%% healthy: healthy host %d got no pick (%v)", i, got)
				}
			}

			// 1 of 4 healthy is 25 % < 50 %: panic mode spreads over all hosts.
			h.setHealthy(0, false)
			h.setHealthy(2, false)
			got = counts(t, p, 4, 4000, keyed)
			for i, c := range got {
				if c < 400 {
					t.Errorf("panic mode: host %d got %d picks, want a share of all hosts (%v)", i, c, got)
				}
			}

			// Panic threshold 0: never panic; only host 3 is healthy.
			p = mustNew(t, Config{Policy: name, PanicThreshold: ptr(0.0)}, h)
			got = counts(t, p, 4, 1000, keyed)
			if got[3] != 1000 {
				t.Errorf("threshold 0: picks %v, want all on healthy host 3", got)
			}
			h.setHealthy(3, false)
			if i := p.Pick(keyed(7)); i != -1 {
				t.Errorf("threshold 0, no healthy host: pick = %d, want -1", i)
			}
		})
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	for _, name := range []string{RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy} {
		t.Run(name, func(t *testing.T) {
			h := weightedHosts(1, 2, 3, 4, 5)
			h.setHealthy(2, false)
			h.setSince(0, time.Unix(1000, 0))
			now := func() time.Time { return time.Unix(1001, 0) }
			p := mustNew(t, Config{Policy: name, SlowStart: SlowStartConfig{Window: 10 * time.Second}, Now: now}, h)
			req := &Request{Hash: 42, HasHash: true}
			if n := testing.AllocsPerRun(1000, func() { p.Pick(req) }); n != 0 {
				t.Errorf("Pick allocates %v times per call, want 0", n)
			}
		})
	}
}
