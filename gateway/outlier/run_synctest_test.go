package outlier

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestDetectorRunReturnsHostsAtIntervalEnds runs the detector's own loop
// (Run, with its timers) on synctest's virtual clock: a host ejected by 5
// consecutive 5xx at 0 comes back at the first interval end (every 10 s)
// at or after base_ejection_time (30 s); ejected again at 31 s, for 2 × 30
// s, it comes back at the first interval end at or after 91 s: 100 s.
func TestDetectorRunReturnsHostsAtIntervalEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, Config{}, 10)
		var mu sync.Mutex
		var back []time.Duration
		start := time.Now()
		det := NewDetector(func(e Event) {
			if !e.Ejected {
				mu.Lock()
				back = append(back, time.Since(start))
				mu.Unlock()
			}
		})
		det.Set([]Cluster{f.c}, start)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go det.Run(ctx)
		returns := func() []time.Duration {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return append([]time.Duration(nil), back...)
		}

		h := f.c.Hosts[0]
		for range 5 {
			f.rec.Status(h, 500, time.Now())
		}
		if !f.ejected(0) {
			t.Fatal("not ejected after 5 consecutive 5xx")
		}
		time.Sleep(30*time.Second - time.Nanosecond)
		if r := returns(); len(r) != 0 || !f.ejected(0) {
			t.Fatalf("returned at %v, before base_ejection_time", r)
		}
		time.Sleep(time.Nanosecond)
		if r := returns(); len(r) != 1 || r[0] != 30*time.Second || f.ejected(0) {
			t.Fatalf("returns at %v (ejected %v), want one at 30s", r, f.ejected(0))
		}

		time.Sleep(time.Second) // 31 s
		for range 5 {
			f.rec.Status(h, 503, time.Now())
		}
		time.Sleep(69 * time.Second) // 100 s
		if r := returns(); len(r) != 2 || r[1] != 100*time.Second || f.ejected(0) {
			t.Fatalf("returns at %v (ejected %v), want the second at 100s", r, f.ejected(0))
		}
	})
}
