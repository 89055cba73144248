package supervisor

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToCapAndResets(t *testing.T) {
	var b backoff
	want := []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
		5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := b.delay(time.Second); got != w {
			t.Fatalf("restart %d: delay %v, want %v", i, got, w)
		}
	}
	if got := b.delay(backoffReset); got != 0 {
		t.Fatalf("after a long uptime: delay %v, want 0", got)
	}
	if got := b.delay(0); got != backoffMin {
		t.Fatalf("crash right after the reset: delay %v, want %v", got, backoffMin)
	}
}
