package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

const (
	gib = 1 << 30
	mib = 1 << 20
	// rssBudget is how much a worker's RSS may grow while it streams a
	// transfer of any size.
	rssBudget = 16 * mib
)

// zeros is an io.Reader of endless zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// vmRSS returns the resident set size of pid, from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssWatch samples the RSS of a set of processes until stopped. Sampling
// measures; it synchronises nothing.
type rssWatch struct {
	base map[int]int64
	peak map[int]int64
	stop chan struct{}
	done sync.WaitGroup
}

// watchRSS records each pid's current RSS as its baseline and samples every
// 5ms from then on.
func watchRSS(t *testing.T, pids map[int]int) *rssWatch {
	t.Helper()
	w := &rssWatch{base: map[int]int64{}, peak: map[int]int64{}, stop: make(chan struct{})}
	for _, pid := range pids {
		rss, err := vmRSS(pid)
		if err != nil {
			t.Fatalf("worker %d: %v", pid, err)
		}
		w.base[pid], w.peak[pid] = rss, rss
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			for pid := range w.base {
				if rss, err := vmRSS(pid); err == nil && rss > w.peak[pid] {
					w.peak[pid] = rss
				}
			}
		}
	}()
	return w
}

// check stops sampling and fails the test if any process grew by budget or
// more.
func (w *rssWatch) check(t *testing.T, budget int64) {
	t.Helper()
	close(w.stop)
	w.done.Wait()
	for pid, base := range w.base {
		growth := w.peak[pid] - base
		t.Logf("worker %d: RSS %d MiB before, peak %d MiB (+%d KiB)", pid, base/mib, w.peak[pid]/mib, growth>>10)
		if growth >= budget {
			t.Errorf("worker %d RSS grew by %d KiB during the transfer, want < %d KiB (it buffers the body)", pid, growth>>10, budget>>10)
		}
	}
}

// TestFlowControlBoundsWorkerMemory streams bodies much larger than any
// buffer through sluice and checks that the worker's memory stays flat:
// sluice must apply backpressure instead of buffering.
func TestFlowControlBoundsWorkerMemory(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d", n)
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, io.LimitReader(zeros{}, n))
		}
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	base := "http://" + p.Addr("http")
	c := newClient(nil)
	c.Timeout = 2 * time.Minute

	// Warm up: the worker's pools and buffers exist before the baseline.
	for range 3 {
		get(t, c, base+"/download?n=65536")
		req, _ := http.NewRequest("POST", base+"/upload", bytes.NewReader(make([]byte, 65536)))
		do(t, c, req)
	}
	pids := p.WorkerPids()
	if len(pids) != 1 {
		t.Fatalf("worker pids %v, want one worker", pids)
	}

	t.Run("1 GiB upload", func(t *testing.T) {
		w := watchRSS(t, pids)
		req, _ := http.NewRequest("POST", base+"/upload", io.LimitReader(zeros{}, gib))
		req.ContentLength = gib
		resp, body := do(t, c, req)
		w.check(t, rssBudget)
		if resp.StatusCode != 200 || string(body) != strconv.Itoa(gib) {
			t.Errorf("status %d, upstream received %q bytes; want 200, %d", resp.StatusCode, body, gib)
		}
	})

	t.Run("1 GiB download", func(t *testing.T) {
		w := watchRSS(t, pids)
		resp, err := c.Get(fmt.Sprintf("%s/download?n=%d", base, gib))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.check(t, rssBudget)
		if err != nil || n != gib {
			t.Errorf("downloaded %d bytes (%v), want %d", n, err, gib)
		}
	})

	t.Run("slow reader of 256 MiB", func(t *testing.T) {
		w := watchRSS(t, pids)
		resp, err := c.Get(fmt.Sprintf("%s/download?n=%d", base, 256*mib))
		if err != nil {
			t.Fatal(err)
		}
		// Read 1 MiB per 10ms tick, about 100 MiB/s: far slower than the
		// upstream writes on loopback.
		var n int64
		buf := make([]byte, 64<<10)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for err == nil {
			<-tick.C
			for quota := 0; quota < mib && err == nil; {
				var k int
				k, err = resp.Body.Read(buf[:min(len(buf), mib-quota)])
				quota += k
				n += int64(k)
			}
		}
		resp.Body.Close()
		w.check(t, rssBudget)
		if err != io.EOF || n != 256*mib {
			t.Errorf("read %d bytes (%v), want %d", n, err, 256*mib)
		}
	})
}
