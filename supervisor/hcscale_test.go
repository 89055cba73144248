package supervisor_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkedHost is an upstream that records when each health check arrives.
type checkedHost struct {
	addr    string
	mu      sync.Mutex
	at      []time.Time   // guarded by mu
	changed chan struct{} // closed and replaced on each check; guarded by mu
}

func newCheckedHost(t *testing.T) *checkedHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &checkedHost{addr: ln.Addr().String(), changed: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.mu.Lock()
			h.at = append(h.at, time.Now())
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// checksIn waits until a check arrives after from+d (so that the window
// [from, from+d) is complete) and returns the number of checks in it.
func (h *checkedHost) checksIn(t *testing.T, from time.Time, d time.Duration) int {
	t.Helper()
	end := from.Add(d)
	deadline := time.After(d + waitTimeout)
	for {
		h.mu.Lock()
		at, changed := h.at, h.changed
		h.mu.Unlock()
		if len(at) > 0 && at[len(at)-1].After(end) {
			n := 0
			for _, a := range at {
				if !a.Before(from) && a.Before(end) {
					n++
				}
			}
			return n
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no health check after the window of %v", d)
		}
	}
}

// firstCheckAfter waits for a check at or after t0 and returns its time.
func (h *checkedHost) firstCheckAfter(t *testing.T, t0 time.Time) time.Time {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		h.mu.Lock()
		at, changed := h.at, h.changed
		h.mu.Unlock()
		for _, a := range at {
			if !a.Before(t0) {
				return a
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("no health check")
		}
	}
}

// TestHealthCheckTrafficDoesNotScaleWithWorkers counts the health checks an
// upstream gets over a fixed number of check intervals with 1 and with 4
// workers: the supervisor checks once per instance, so both counts are the
// number of intervals (within one).
func TestHealthCheckTrafficDoesNotScaleWithWorkers(t *testing.T) {
	t.Parallel()
	const (
		interval  = 50 * time.Millisecond
		intervals = 10
	)
	counts := map[int]int{}
	for _, workers := range []int{1, 4} {
		h := newCheckedHost(t)
		cfg := resilienceConfig(controlPath(t), []string{h.addr}, `
  [[cluster.health_check]]
  type = "http"
  interval = "50ms"
  no_traffic_interval = "50ms"
  timeout = "1s"
  unhealthy_threshold = 1
  healthy_threshold = 1
  http = { path = "/healthz" }
`, "")
		cfg = strings.Replace(cfg, "workers = 2", fmt.Sprintf("workers = %d", workers), 1)
		s := start(t, cfg)
		s.wait(t, "ready", map[string]any{"workers": workers}, nil)
		// The window starts at a check once every worker serves.
		from := h.firstCheckAfter(t, time.Now())
		counts[workers] = h.checksIn(t, from, intervals*interval)
	}
	t.Logf("health checks in %d intervals: %d with 1 worker, %d with 4 workers", intervals, counts[1], counts[4])
	// At most one check per interval (plus the one the window starts
	// with) whatever the number of workers; checks per worker would make
	// about 4 × intervals with 4. A loaded machine may delay the
	// supervisor's timer, so fewer checks only need to show it checks.
	for w, n := range counts {
		if n < intervals/2 || n > intervals+1 {
			t.Errorf("%d workers: %d health checks in %d intervals, want %d to %d", w, n, intervals, intervals/2, intervals+1)
		}
	}
}
