package dns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// scripted is a Lookuper whose answers the test sets, recording when each
// lookup happened (in the synctest bubble's clock).
type scripted struct {
	mu    sync.Mutex
	addrs []netip.Addr
	ttl   time.Duration
	err   error
	at    []time.Time
}

func (s *scripted) Lookup(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Now())
	return slices.Clone(s.addrs), s.ttl, s.err
}

func (s *scripted) set(ttl time.Duration, err error, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs, s.ttl, s.err = nil, ttl, err
	for _, a := range addrs {
		s.addrs = append(s.addrs, netip.MustParseAddr(a))
	}
}

// offsets returns when the lookups happened, relative to start.
func (s *scripted) offsets(start time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d []time.Duration
	for _, at := range s.at {
		d = append(d, at.Sub(start))
	}
	return d
}

// TestWatchRefreshTiming checks, on synctest's virtual clock, when a
// strict_dns cluster re-resolves: every dns_refresh_rate, through failed
// resolutions too (which keep the hosts); with respect_dns_ttl, after the
// records' TTL, but not more often than MinRefresh.
func TestWatchRefreshTiming(t *testing.T) {
	for _, tc := range []struct {
		name       string
		respectTTL bool
		ttl        time.Duration
		want       []time.Duration
	}{
		{"refresh rate", false, 30 * time.Second, []time.Duration{0, 5 * time.Second, 10 * time.Second, 15 * time.Second}},
		{"ttl", true, 7 * time.Second, []time.Duration{0, 7 * time.Second, 14 * time.Second, 21 * time.Second}},
		{"ttl below the minimum", true, 0, []time.Duration{0, MinRefresh, 2 * MinRefresh, 3 * MinRefresh}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := &scripted{}
				l.set(tc.ttl, nil, "10.0.0.1")
				spec := &Spec{Name: "c", Type: StrictDNS, Endpoints: []string{"api.example:443"},
					RefreshRate: 5 * time.Second, RespectTTL: tc.respectTTL}
				var updates [][]string
				ctx, cancel := context.WithCancel(t.Context())
				start := time.Now()
				done := make(chan error)
				go func() { done <- Watch(ctx, spec, l, func(h []string) { updates = append(updates, h) }, nil) }()
				// Just before the fourth lookup is due: three have been made.
				time.Sleep(tc.want[3] - time.Nanosecond)
				synctest.Wait()
				if got := l.offsets(start); !slices.Equal(got, tc.want[:3]) {
					t.Fatalf("lookups at %v, want %v", got, tc.want[:3])
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if got := l.offsets(start); !slices.Equal(got, tc.want) {
					t.Fatalf("lookups at %v, want %v", got, tc.want)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if len(updates) != 1 || !slices.Equal(updates[0], []string{"10.0.0.1:443"}) {
					t.Fatalf("updates %v, want one: the unchanged host set", updates)
				}
			})
		})
	}
}

// TestWatchKeepsHostsThroughFailures checks that failed resolutions keep
// the last host set, are reported, and are retried at the refresh rate,
// and that the next answer that differs is an update.
func TestWatchKeepsHostsThroughFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &scripted{}
		l.set(time.Minute, nil, "10.0.0.1")
		spec := &Spec{Name: "c", Type: StrictDNS, Endpoints: []string{"api.example:443"}, RefreshRate: 5 * time.Second}
		var updates [][]string
		var failures int
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go Watch(ctx, spec, l, func(h []string) { updates = append(updates, h) }, func(error) { failures++ })
		synctest.Wait()
		l.set(0, errors.New("SERVFAIL"))
		time.Sleep(10 * time.Second) // two refreshes fail
		synctest.Wait()
		if failures != 2 || len(updates) != 1 {
			t.Fatalf("after two failed refreshes: %d failures reported, updates %v; want 2 and the first host set only", failures, updates)
		}
		l.set(time.Minute, nil, "10.0.0.2", "10.0.0.1")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if want := [][]string{{"10.0.0.1:443"}, {"10.0.0.1:443", "10.0.0.2:443"}}; len(updates) != 2 || !slices.Equal(updates[1], want[1]) {
			t.Fatalf("updates %v, want %v", updates, want)
		}
	})
}
