package router

import (
	"testing"
	"time"
)

// TestBackoffIsFullJitterExponentialAndCapped checks the retry backoff
// against Envoy's: uniform in [0, 25 ms × 2^try], capped at max_interval
// (default 10 × base).
func TestBackoffIsFullJitterExponentialAndCapped(t *testing.T) {
	p := &RetryPolicy{BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond}
	for try, ceiling := range []time.Duration{25, 50, 100, 200, 250, 250, 250} {
		ceiling *= time.Millisecond
		var lo, hi time.Duration = ceiling, 0
		for range 2000 {
			d := p.backoff(try)
			if d < 0 || d > ceiling {
				t.Fatalf("try %d: backoff %v outside [0, %v]", try, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// 2000 uniform draws: the extremes lie within a tenth of the
		// bounds (each misses with probability 0.9^2000).
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Fatalf("try %d: backoffs spanned [%v, %v], want close to [0, %v]", try, lo, hi, ceiling)
		}
	}
	if d := p.backoff(1 << 30); d > p.MaxInterval {
		t.Fatalf("a very late try waits %v, over max_interval", d)
	}
}
