package hoststate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary re-executed as a worker process: it opens the region
// passed as fd 3 and hammers it as $HOSTSTATE_CHILD says, then prints its
// result.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HOSTSTATE_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// fixedNow is the instant every child passes to Take, so that no bucket
// refills while they race: the sum of successful takes must then be
// exactly the bucket's size.
var fixedNow = time.Unix(1_900_000_000, 0)

func child(mode string) int {
	r, err := Open(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	worker, _ := strconv.Atoi(os.Getenv("HOSTSTATE_WORKER"))
	switch mode {
	case "buckets":
		b := r.LookupBuckets("rl")
		if b == nil {
			fmt.Fprintln(os.Stderr, "no buckets")
			return 1
		}
		took := 0
		for fails := 0; fails < 1000; {
			if ok, _, _ := b.Take(0, 1, fixedNow); ok {
				took++
			} else {
				fails++
			}
		}
		fmt.Println(took)
	case "breaker":
		c := r.Cluster("backend", worker)
		if c == nil {
			fmt.Fprintln(os.Stderr, "no cluster")
			return 1
		}
		b := c.Breaker(Requests)
		held := 0
		for i := 0; i < 20000; i++ {
			if b.TryAcquire(100) {
				held++
				if i%3 == 0 { // churn: release some, keep the others
					b.Release()
					held--
				}
			}
		}
		fmt.Println(held)
		select {} // hold them until killed, like a crashed worker
	case "hosts":
		h := r.Host("backend", "10.0.0.1:80")
		if h == nil {
			fmt.Fprintln(os.Stderr, "no host")
			return 1
		}
		for i := 0; i < 10000; i++ {
			h.RecordResult(ResultSuccess)
			h.RecordResult(ResultGatewayFailure)
		}
		fmt.Println(0)
	}
	return 0
}

func newRegion(t testing.TB, o Options) *Region {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// spawn starts n children in mode on r and returns their first output
// lines as integers. Children in "breaker" mode stay alive; they are killed
// at cleanup or by the caller through the returned commands.
func spawn(t *testing.T, r *Region, mode string, n int) ([]int, []*exec.Cmd) {
	t.Helper()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		outs = make([]int, n)
		cmds = make([]*exec.Cmd, n)
		errs []error
	)
	for i := 0; i < n; i++ {
		f, err := r.File()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "HOSTSTATE_CHILD="+mode, "HOSTSTATE_WORKER="+strconv.Itoa(i))
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		cmds[i] = cmd
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := bufio.NewReader(out).ReadString('\n')
			v, perr := strconv.Atoi(strings.TrimSpace(line))
			mu.Lock()
			defer mu.Unlock()
			if err != nil || perr != nil {
				errs = append(errs, fmt.Errorf("child %d: %q %v %v", i, line, err, perr))
			}
			outs[i] = v
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	return outs, cmds
}

func TestBucketsExactAcrossProcesses(t *testing.T) {
	r := newRegion(t, Options{Slots: 64, Workers: 8, ArenaWords: 64})
	const size = 200000
	if _, err := r.AddBuckets("rl", 1, BucketSpec{MaxTokens: size, TokensPerFill: 1, FillInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Refill the bucket as of fixedNow, so the children race over exactly size tokens.
	b := r.LookupBuckets("rl")
	b.fill(fixedNow)
	outs, _ := spawn(t, r, "buckets", 4)
	sum, busy := 0, 0
	for _, v := range outs {
		sum += v
		if v > 0 {
			busy++
		}
	}
	if sum != size {
		t.Fatalf("children took %d tokens in all (%v), want exactly %d", sum, outs, size)
	}
	if busy < 2 {
		t.Logf("only %d children took tokens: little contention (%v)", busy, outs)
	}
}

func TestBreakerGlobalAcrossProcessesAndReleaseWorker(t *testing.T) {
	r := newRegion(t, Options{Slots: 64, Workers: 4, ArenaWords: 1})
	sup, err := r.AddCluster("backend", -1)
	if err != nil {
		t.Fatal(err)
	}
	outs, cmds := spawn(t, r, "breaker", 4)
	held := 0
	for _, v := range outs {
		held += v
	}
	// Every child ends holding units; together never more than the limit.
	if got := sup.Breaker(Requests).Count(); got != uint64(held) || held > 100 {
		t.Fatalf("global count %d, children hold %d (%v); limit 100", got, held, outs)
	}
	// Worker 2 "crashes": the supervisor gives its units back.
	cmds[2].Process.Kill()
	cmds[2].Wait()
	if err := r.ReleaseWorker(2); err != nil {
		t.Fatal(err)
	}
	if got, want := sup.Breaker(Requests).Count(), uint64(held-outs[2]); got != want {
		t.Fatalf("after ReleaseWorker(2): count %d, want %d", got, want)
	}
}

func TestHostCountersAcrossProcesses(t *testing.T) {
	r := newRegion(t, Options{Slots: 64, Workers: 4, ArenaWords: 1})
	h, err := r.AddHost("backend", "10.0.0.1:80", 0)
	if err != nil {
		t.Fatal(err)
	}
	spawn(t, r, "hosts", 3)
	es, et, _, _ := h.TakeInterval()
	if es != 30000 || et != 60000 {
		t.Fatalf("interval counters %d/%d, want 30000/60000", es, et)
	}
	if c5, gw, _ := h.Consecutive(); c5 == 0 || gw == 0 || c5 > 3 || gw > 3 {
		// Each child ends on a failure after a success; with interleaving the
		// consecutive counts are between 1 and the number of children.
		t.Fatalf("consecutive 5xx %d, gateway %d; want 1..3", c5, gw)
	}
}

func TestHostStateSurvivesReopenAndReload(t *testing.T) {
	r := newRegion(t, Options{Slots: 16, Workers: 2, ArenaWords: 1})
	h, err := r.AddHost("backend", "10.0.0.1:80", FlagFailedActiveHC|FlagPendingActiveHC)
	if err != nil {
		t.Fatal(err)
	}
	if h.Healthy() {
		t.Fatal("new checked host is healthy before its first check")
	}
	h.ClearFlags(FlagFailedActiveHC | FlagPendingActiveHC)
	h.SetFlags(FlagOutlierEjected)

	// A worker (or the next supervisor) maps the same memfd.
	f, err := r.File()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	h2 := r2.Host("backend", "10.0.0.1:80")
	if h2 == nil || h2.Flags() != FlagOutlierEjected {
		t.Fatalf("reopened host flags = %v", h2)
	}
	// A reload keeps the host: AddHost finds it and keeps its state.
	h3, err := r2.AddHost("backend", "10.0.0.1:80", FlagFailedActiveHC)
	if err != nil || h3.Flags() != FlagOutlierEjected {
		t.Fatalf("re-added host flags %b, err %v", h3.Flags(), err)
	}
	// A reload that drops it retires it: lookups miss, the handle still works.
	if _, err := r.SetHosts("backend", []string{"10.0.0.2:80"}, 0); err != nil {
		t.Fatal(err)
	}
	if r2.Host("backend", "10.0.0.1:80") != nil {
		t.Fatal("retired host still found")
	}
	if live, retired := r.Len(); live != 1 || retired != 1 {
		t.Fatalf("live %d retired %d, want 1 and 1", live, retired)
	}
	h.SetFlags(FlagDegradedActiveHC) // old handle still usable
	r.Reclaim()
	if live, retired := r.Len(); live != 1 || retired != 0 {
		t.Fatalf("after Reclaim: live %d retired %d", live, retired)
	}
}

func TestOpenRejectsOtherMemory(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8192); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(int(f.Fd())); !errors.Is(err, ErrBadRegion) {
		t.Fatalf("Open = %v, want ErrBadRegion", err)
	}
}

func TestTableFullAndLongKeys(t *testing.T) {
	r := newRegion(t, Options{Slots: 2, Workers: 1, ArenaWords: 4})
	if _, err := r.AddHost("c", strings.Repeat("a", MaxKeyLen), 0); err == nil {
		t.Fatal("over-long key accepted")
	}
	for i := 0; i < 2; i++ {
		if _, err := r.AddHost("c", strconv.Itoa(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.AddHost("c", "x", 0); !errors.Is(err, ErrFull) {
		t.Fatalf("third key in 2 slots: %v, want ErrFull", err)
	}
	if _, err := r.AddBuckets("b", 5, BucketSpec{1, 1, time.Second}); err == nil {
		t.Fatal("5 buckets in an arena of 4 accepted")
	}
}

func TestBucketRefillAndReset(t *testing.T) {
	r := newRegion(t, Options{Slots: 8, Workers: 1, ArenaWords: 8})
	spec := BucketSpec{MaxTokens: 3, TokensPerFill: 2, FillInterval: time.Second}
	b, err := r.AddBuckets("k", 2, spec)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, r.epoch).Add(10*time.Second + 250*time.Millisecond)
	b.fill(t0)
	for i := 0; i < 3; i++ {
		if ok, rem, reset := b.Take(0, 1, t0); !ok || rem != uint32(2-i) || reset != 750*time.Millisecond {
			t.Fatalf("take %d: ok %v remaining %d reset %v", i, ok, rem, reset)
		}
	}
	if ok, rem, _ := b.Take(0, 1, t0); ok || rem != 0 {
		t.Fatalf("empty bucket gave a token (remaining %d)", rem)
	}
	if ok, _, _ := b.Take(1, 1, t0); !ok {
		t.Fatal("bucket 1 shares bucket 0's tokens")
	}
	// Next fill boundary: +2 tokens.
	t1 := t0.Add(750 * time.Millisecond)
	if ok, rem, _ := b.Take(0, 1, t1); !ok || rem != 1 {
		t.Fatalf("after one fill: ok %v remaining %d, want true 1", ok, rem)
	}
	// Long idle: capped at MaxTokens.
	if ok, rem, _ := b.Take(0, 1, t1.Add(time.Hour)); !ok || rem != 2 {
		t.Fatalf("after an hour: ok %v remaining %d, want true 2", ok, rem)
	}
	// Clock stepping back: no refill, no panic.
	if ok, _, _ := b.Take(0, 3, t0.Add(-time.Minute)); ok {
		t.Fatal("clock step back refilled the bucket")
	}
	// Same key, same spec: the same buckets; another spec: an error.
	if b2, err := r.AddBuckets("k", 2, spec); err != nil || &b2.words[0] != &b.words[0] {
		t.Fatalf("AddBuckets again: %v", err)
	}
	if _, err := r.AddBuckets("k", 2, BucketSpec{1, 1, time.Second}); err == nil {
		t.Fatal("AddBuckets with another spec accepted")
	}
	// Retired and reclaimed buckets' arena words are reused.
	r.RetireBuckets("k")
	r.Reclaim()
	b3, err := r.AddBuckets("k2", 2, spec)
	if err != nil || &b3.words[0] != &b.words[0] {
		t.Fatalf("reclaimed arena not reused: %v", err)
	}
}

func TestTryEjectMaxPercent(t *testing.T) {
	r := newRegion(t, Options{Slots: 8, Workers: 1, ArenaWords: 1})
	c, _ := r.AddCluster("c", -1)
	// 10 hosts, 10 %: one ejection; a second would be 20 %.
	if !c.TryEject(10, 10) || c.TryEject(10, 10) {
		t.Fatal("10 hosts at 10 %: want exactly one ejection")
	}
	c.Uneject()
	// 3 hosts, 10 %: still one (Envoy ejects at least one host).
	if !c.TryEject(3, 10) || c.TryEject(3, 10) {
		t.Fatal("3 hosts at 10 %: want exactly one ejection")
	}
	c.Uneject()
	for i := 0; i < 5; i++ {
		if !c.TryEject(10, 50) {
			t.Fatalf("10 hosts at 50 %%: ejection %d refused", i+1)
		}
	}
	if c.TryEject(10, 50) || c.Ejected() != 5 {
		t.Fatalf("10 hosts at 50 %%: %d ejected, want 5", c.Ejected())
	}
}

func TestLockStolenFromDeadProcess(t *testing.T) {
	r := newRegion(t, Options{Slots: 8, Workers: 1, ArenaWords: 1})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// A process that died holding the lock.
	*r.hdr(hdrLock) = uint64(cmd.Process.Pid)
	if _, err := r.AddHost("c", "a:1", 0); err != nil {
		t.Fatal(err)
	}
	if *r.hdr(hdrLock) != 0 {
		t.Fatal("lock not released")
	}
}
