package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// loadClient is one keep-alive client sending requests in a loop.
type loadClient struct {
	c         *http.Client
	successes atomic.Int64
	connErrs  atomic.Int64
	badErrs   atomic.Int64 // non-200 answers and non-connection errors
	lastErr   atomic.Value // string
	after     atomic.Int64 // successes counted after the replacement was ready
}

// TestWorkerKilledUnderLoadIsReplaced kills one of two workers with SIGKILL
// while eight keep-alive clients send requests, and checks that the
// supervisor restarts the same slot, that requests keep succeeding, and that
// the only failures are connection errors on connections of the killed
// worker.
func TestWorkerKilledUnderLoadIsReplaced(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	p := gwtest.Start(t, simpleConfig(2, up.Addr))
	url := "http://" + p.Addr("http") + "/load"

	const clients = 8
	const wantAfter = 20 // successes per client once the replacement is ready
	var (
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		phase     atomic.Bool // true once the replacement is ready
		warm      sync.WaitGroup
		recovered sync.WaitGroup
	)
	lcs := make([]*loadClient, clients)
	warm.Add(clients)
	recovered.Add(clients)
	for i := range lcs {
		lc := &loadClient{c: newClient(nil)}
		lc.c.Timeout = ioTimeout
		lcs[i] = lc
		wg.Add(1)
		go func() {
			defer wg.Done()
			var warmed, done bool
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := lc.c.Get(url)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						lc.badErrs.Add(1)
						lc.lastErr.Store(fmt.Sprintf("status %d", resp.StatusCode))
						continue
					}
				}
				if err != nil {
					if isConnError(err) {
						lc.connErrs.Add(1)
					} else {
						lc.badErrs.Add(1)
					}
					lc.lastErr.Store(err.Error())
					continue
				}
				lc.successes.Add(1)
				if !warmed {
					warmed = true
					warm.Done()
				}
				if phase.Load() && lc.after.Add(1) == wantAfter && !done {
					done = true
					recovered.Done()
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	waitGroup(t, &warm, 15*time.Second, "every client to get a first response")
	pids := p.WorkerPids()
	victim, ok := pids[0]
	if !ok || len(pids) != 2 {
		t.Fatalf("worker pids %v, want slots 0 and 1", pids)
	}
	mark := p.Mark()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", victim, err)
	}
	isSlot0 := func(e map[string]any) bool { return intField(e, "slot") == 0 }
	p.WaitLogSince(t, mark, "worker exited", isSlot0, 15*time.Second)
	started := p.WaitLogSince(t, mark, "worker started", func(e map[string]any) bool {
		return isSlot0(e) && intField(e, "pid") != victim
	}, 15*time.Second)
	newPid := intField(started, "pid")
	p.WaitLogSince(t, mark, "worker ready", func(e map[string]any) bool {
		pid, ok := gwtest.Entry(e).Int("pid")
		return isSlot0(e) && (!ok || pid == newPid)
	}, 15*time.Second)
	if now := p.WorkerPids(); now[0] != newPid || now[1] != pids[1] {
		t.Errorf("worker pids after restart %v, want slot 0 = %d and slot 1 unchanged (%d)", now, newPid, pids[1])
	}

	phase.Store(true)
	waitGroup(t, &recovered, 30*time.Second, fmt.Sprintf("every client to succeed %d times after the restart", wantAfter))

	var connErrs int64
	for i, lc := range lcs {
		ce, be := lc.connErrs.Load(), lc.badErrs.Load()
		connErrs += ce
		if be > 0 {
			t.Errorf("client %d: %d failures that are not connection errors (last: %v)", i, be, lc.lastErr.Load())
		}
		if ce > 1 {
			t.Errorf("client %d: %d connection errors, want at most 1 (last: %v)", i, ce, lc.lastErr.Load())
		}
	}
	t.Logf("connection errors across %d clients: %d", clients, connErrs)
}

// intField returns e[key] as an int, or -1.
func intField(e map[string]any, key string) int {
	n, ok := gwtest.Entry(e).Int(key)
	if !ok {
		return -1
	}
	return n
}

// waitGroup waits for wg, failing the test after timeout.
func waitGroup(t *testing.T, wg *sync.WaitGroup, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
