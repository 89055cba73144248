package clock

import (
	"testing"
	"time"
)

// TestNowFollowsTheClock: Now agrees with time.Now on both clocks, and
// durations between its readings are the monotonic clock's.
func TestNowFollowsTheClock(t *testing.T) {
	before := time.Now()
	n := Now()
	after := time.Now()
	if n.Before(before) || n.After(after) {
		t.Fatalf("Now %v outside [%v, %v] by the monotonic clock", n, before, after)
	}
	// The wall clock alone (Round(0) drops the monotonic reading) lags by
	// no more than a refresh period.
	if w := n.Round(0); w.Before(before.Round(0).Add(-refreshAfter)) || w.After(after.Round(0).Add(refreshAfter)) {
		t.Fatalf("Now's wall clock %v too far from [%v, %v]", w, before.Round(0), after.Round(0))
	}
	next := Now()
	if d := next.Sub(n); d < 0 {
		t.Fatalf("Now went back by %v", -d)
	}
}

// TestNowTakesANewBaseAfterTheRefreshPeriod: a base older than
// refreshAfter is replaced by a full reading.
func TestNowTakesANewBaseAfterTheRefreshPeriod(t *testing.T) {
	// A base as old as two refresh periods.
	old := &base{t: epoch, mono: time.Since(epoch) - 2*refreshAfter}
	current.Store(old)
	Now()
	if current.Load() == old {
		t.Fatal("Now kept a base older than the refresh period")
	}
	b := current.Load()
	if d := time.Since(epoch) - b.mono; d < 0 || d > refreshAfter {
		t.Fatalf("new base is %v old", d)
	}
}

func BenchmarkNow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Now()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		time.Now()
	}
}
