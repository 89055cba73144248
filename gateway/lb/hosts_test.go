package lb

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// testHost is one host of testHosts; its runtime state is atomic, as a
// cluster's is.
type testHost struct {
	addr    string
	weight  uint32
	healthy atomic.Bool
	active  atomic.Int64
	since   atomic.Int64 // unix nanoseconds; 0 is the zero time
}

// testHosts implements Hosts over a fixed list.
type testHosts struct {
	h       []*testHost
	healthy atomic.Int64
}

// newHosts returns n healthy hosts of weight 1 at 10.0.0.x:80.
func newHosts(n int) *testHosts {
	w := make([]uint32, n)
	for i := range w {
		w[i] = 1
	}
	return weightedHosts(w...)
}

// weightedHosts returns one healthy host per weight.
func weightedHosts(weights ...uint32) *testHosts {
	t := &testHosts{}
	for i, w := range weights {
		h := &testHost{addr: fmt.Sprintf("10.0.%d.%d:80", i/256, i%256), weight: w}
		h.healthy.Store(true)
		t.h = append(t.h, h)
	}
	t.healthy.Store(int64(len(weights)))
	return t
}

// without returns a new list of the same hosts minus host i.
func (t *testHosts) without(i int) *testHosts {
	u := &testHosts{}
	u.h = append(append(u.h, t.h[:i]...), t.h[i+1:]...)
	for _, h := range u.h {
		if h.healthy.Load() {
			u.healthy.Add(1)
		}
	}
	return u
}

func (t *testHosts) setHealthy(i int, ok bool) {
	if t.h[i].healthy.Swap(ok) != ok {
		if ok {
			t.healthy.Add(1)
		} else {
			t.healthy.Add(-1)
		}
	}
}

func (t *testHosts) setSince(i int, at time.Time) { t.h[i].since.Store(at.UnixNano()) }

func (t *testHosts) Len() int             { return len(t.h) }
func (t *testHosts) Address(i int) string { return t.h[i].addr }
func (t *testHosts) Weight(i int) uint32  { return t.h[i].weight }
func (t *testHosts) Healthy(i int) bool   { return t.h[i].healthy.Load() }
func (t *testHosts) HealthyLen() int      { return int(t.healthy.Load()) }
func (t *testHosts) Active(i int) int64   { return t.h[i].active.Load() }
func (t *testHosts) Since(i int) time.Time {
	if ns := t.h[i].since.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// mustNew builds a policy from cfg and gives it h.
func mustNew(t testing.TB, cfg Config, h Hosts) Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	if h != nil {
		p.Update(h)
	}
	return p
}

// counts picks n times and counts the picks per host; -1 fails the test.
func counts(t testing.TB, p Policy, hosts, n int, r func(k int) *Request) []int {
	t.Helper()
	got := make([]int, hosts)
	for k := range n {
		var req *Request
		if r != nil {
			req = r(k)
		}
		i := p.Pick(req)
		if i < 0 || i >= hosts {
			t.Fatalf("pick %d = %d, want a host in [0, %d)", k, i, hosts)
		}
		got[i]++
	}
	return got
}

// near fails the test unless got/n is within tol of want (fractions).
func near(t testing.TB, what string, got, n int, want, tol float64) {
	t.Helper()
	if f := float64(got) / float64(n); f < want-tol || f > want+tol {
		t.Errorf("%s: share %.4f, want %.4f ± %.4f", what, f, want, tol)
	}
}

func ptr[T any](v T) *T { return &v }

// keyed returns requests with hash key k, as a route hash policy makes them.
func keyed(k int) *Request {
	return &Request{Hash: HashString(fmt.Sprintf("user-%d", k), 0), HasHash: true}
}
