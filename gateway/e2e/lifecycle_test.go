package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// The lifecycle proof: concurrent clients of three kinds — back-to-back
// keep-alive, keep-alive with random idle gaps, a new connection per
// request — send POSTs (which no client retries silently) while sluice
// reloads, rejects an invalid config, upgrades its binary and loses workers
// to kill -9.

// lifecycleConfig answers GET /gen with the generation's marker (so a test
// can tell generations apart) and sends everything else to the upstream.
func lifecycleConfig(upstream, marker string) string {
	return config(2,
		fmt.Sprintf("\n    [[route_config.virtual_host.route]]\n    match = { path = \"/gen\" }\n    direct_response = { status = 200, body = %q }\n", marker)+
			route(`prefix = "/"`, "up"),
		cluster("up", upstream))
}

// clientKind is one of the three client behaviours.
type clientKind int

const (
	backToBack clientKind = iota // keep-alive, no pause
	idleGaps                     // keep-alive, 0-400 ms pauses (parks and hands off idle connections)
	newConns                     // a new connection per request
)

func (k clientKind) String() string { return [...]string{"back-to-back", "idle-gaps", "new-conn"}[k] }

// lifecycleClient posts in a loop and records what happened. The
// keep-alive kinds speak HTTP/1.1 over one connection of their own rather
// than through net/http's Transport, which drops a healthy connection by
// itself when it has not seen its request's write finish within 50 ms of
// the response (maxWriteWaitBeforeConnReuse: a loaded machine is enough)
// and then dials again: the count of new connections would not be
// sluice's alone. Here every close comes from sluice and shows as a failed
// request.
type lifecycleClient struct {
	kind  clientKind
	c     *http.Client // newConns
	dials atomic.Int64
	tally

	conn net.Conn      // keep-alive kinds: the current connection, owned by run
	br   *bufio.Reader // reads conn
}

// tally counts a load client's successful requests and keeps every
// failed one's error. Safe for concurrent use.
type tally struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string
}

// record counts a request that ended with err (nil: success).
func (t *tally) record(err error) {
	if err == nil {
		t.ok.Add(1)
		return
	}
	t.mu.Lock()
	t.failures = append(t.failures, err.Error())
	t.mu.Unlock()
}

func (t *tally) failureList() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.failures...)
}

func (t *tally) counts() *tally { return t }

// waitProgress waits until every client completed n more requests.
func waitProgress[C interface{ counts() *tally }](t *testing.T, clients []C, n int64) {
	t.Helper()
	base := make([]int64, len(clients))
	for i, c := range clients {
		base[i] = c.counts().ok.Load()
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, c := range clients {
		tl := c.counts()
		for tl.ok.Load() < base[i]+n {
			if time.Now().After(deadline) {
				t.Fatalf("client %d made no progress: %d requests, failures %q", i, tl.ok.Load()-base[i], tl.failureList())
			}
			time.Sleep(5 * time.Millisecond) // polling a counter the clients advance
		}
	}
}

func newLifecycleClient(kind clientKind) *lifecycleClient {
	lc := &lifecycleClient{kind: kind}
	if kind == newConns {
		d := &net.Dialer{Timeout: ioTimeout}
		tr := &http.Transport{DisableKeepAlives: true, DialContext: countingDial(d, &lc.dials)}
		lc.c = &http.Client{Transport: tr, Timeout: ioTimeout}
	}
	return lc
}

// postKeepAlive posts body to /work on addr over the client's connection,
// dialling one first if it has none, and reports an error unless the echo
// comes back whole with a 200 on a connection that stays open. After an
// error the connection is closed, and the next request dials.
func (lc *lifecycleClient) postKeepAlive(addr, body string) error {
	if lc.conn == nil {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			return err
		}
		lc.dials.Add(1)
		lc.conn, lc.br = c, bufio.NewReader(c)
	}
	err := func() error {
		lc.conn.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := fmt.Fprintf(lc.conn, "POST /work HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body); err != nil {
			return err
		}
		resp, err := http.ReadResponse(lc.br, nil)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return err
		case resp.StatusCode != 200 || string(got) != body:
			return fmt.Errorf("status %d, body %q", resp.StatusCode, truncate(got, 80))
		case resp.Close:
			return fmt.Errorf("the response closes the connection (Connection: close)")
		}
		return nil
	}()
	if err != nil {
		lc.conn.Close()
		lc.conn = nil
	}
	return err
}

// postEcho posts body to an echoing upstream through c and reports an
// error unless it comes back whole with a 200.
func postEcho(c *http.Client, url, body string) error {
	resp, err := c.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != 200 || string(got) != body) {
		err = fmt.Errorf("status %d, body %q", resp.StatusCode, truncate(got, 80))
	}
	return err
}

// run posts to addr until stop.
func (lc *lifecycleClient) run(addr string, stop <-chan struct{}) {
	defer func() {
		if lc.conn != nil {
			lc.conn.Close()
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		body := fmt.Sprintf("%s-%d", lc.kind, i)
		var err error
		if lc.kind == newConns {
			err = postEcho(lc.c, "http://"+addr+"/work", body)
		} else {
			err = lc.postKeepAlive(addr, body)
		}
		lc.record(err)
		if err == nil && lc.kind == idleGaps {
			time.Sleep(rand.N(400 * time.Millisecond)) // the client's think time, not synchronisation
		}
	}
}

// probe is a raw keep-alive connection asking GET /gen.
type probe struct {
	c  net.Conn
	br *bufio.Reader
}

func (pr *probe) gen(t *testing.T) string {
	t.Helper()
	pr.c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(pr.c, "GET /gen HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("probe connection: write: %v", err)
	}
	resp, err := http.ReadResponse(pr.br, nil)
	if err != nil {
		t.Fatalf("probe connection: read: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatalf("probe connection: response asks to close the connection")
	}
	return string(b)
}

func TestRestartsLoseNoRequestAndKeepAliveClientsNeverReconnect(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body) // echo
	}))
	// The supervisor runs from a path of its own, which upgrades replace
	// with a second build (v2) and back.
	exe := filepath.Join(t.TempDir(), "sluice")
	installBinary(t, exe, gwtest.Binary(t))
	v2 := filepath.Join(t.TempDir(), "sluice-v2")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v2", "-o", v2, "github.com/sluice-proxy/sluice").CombinedOutput(); err != nil {
		t.Fatalf("build v2: %v\n%s", err, out)
	}
	p := gwtest.Start(t, lifecycleConfig(up.Addr, "gen-1"), gwtest.WithBinary(exe))
	addr := p.Addr("http")

	var clients []*lifecycleClient
	var runs []func(<-chan struct{})
	for _, k := range []clientKind{backToBack, backToBack, idleGaps, idleGaps, idleGaps, newConns, newConns} {
		lc := newLifecycleClient(k)
		clients = append(clients, lc)
		runs = append(runs, func(stop <-chan struct{}) { lc.run(addr, stop) })
	}
	stopClients := runUntilStopped(runs...)
	defer stopClients()
	waitProgress(t, clients, 3)

	pc, err := net.Dial("tcp", p.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pr := &probe{c: pc, br: bufio.NewReader(pc)}
	if g := pr.gen(t); g != "gen-1" {
		t.Fatalf("probe before any reload: %q", g)
	}
	dialsBefore := make([]int64, len(clients))
	for i, lc := range clients {
		dialsBefore[i] = lc.dials.Load()
	}

	// Phase 1: reloads (and an invalid config among them). Nothing may fail
	// and no keep-alive client may open a new connection.
	const reloads = 10
	for i := 2; i <= reloads+1; i++ {
		marker := fmt.Sprintf("gen-%d", i)
		if err := os.WriteFile(p.ConfigPath, []byte(lifecycleConfig(up.Addr, marker)), 0o600); err != nil {
			t.Fatal(err)
		}
		mark := p.Mark()
		reloadOK(t, p, fmt.Sprintf("reload %d", i-1))
		// Once the old generation is gone, the probe connection can only
		// have been handed over: its next response must be the new one's.
		done := p.WaitLogSince(t, mark, "reload complete", nil, 15*time.Second)
		prev := intField(done, "previous_generation")
		p.WaitLogSince(t, mark, "generation drained", func(e map[string]any) bool { return intField(e, "generation") == prev }, 15*time.Second)
		if g := pr.gen(t); g != marker {
			t.Fatalf("after reload %d the kept-alive probe connection got %q, want %q from the new generation", i-1, g, marker)
		}
		if i == 5 {
			bad := bytes.Replace([]byte(lifecycleConfig(up.Addr, "never")), []byte("workers = 2"), []byte("workers = \"two\""), 1)
			if err := os.WriteFile(p.ConfigPath, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			if code, out := reload(t, p); code == 0 || !strings.Contains(out, "workers") {
				t.Fatalf("reload of an invalid config: exit %d, %q; want a failure naming the key", code, out)
			}
			if g := pr.gen(t); g != marker {
				t.Fatalf("after a failed reload the probe got %q, want %q still", g, marker)
			}
		}
		waitProgress(t, clients, 2)
	}
	for i, lc := range clients {
		if f := lc.failureList(); len(f) > 0 {
			t.Errorf("client %d (%s): %d failed requests during reloads: %q", i, lc.kind, len(f), f)
		}
		if lc.kind != newConns {
			if d := lc.dials.Load() - dialsBefore[i]; d != 0 {
				t.Errorf("client %d (%s) opened %d new connections during reloads, want 0", i, lc.kind, d)
			}
		}
	}
	if t.Failed() {
		return
	}

	// Phase 2: binary upgrades, alternating v2 and the first build. Nothing
	// may fail, no keep-alive client may reconnect, and each old supervisor
	// with its workers must be gone before the next upgrade.
	const upgrades = 10
	supervisor := p.Pid()
	for u := 1; u <= upgrades; u++ {
		src := v2
		if u%2 == 0 {
			src = gwtest.Binary(t)
		}
		installBinary(t, exe, src)
		marker := fmt.Sprintf("upgrade-%d", u)
		if err := os.WriteFile(p.ConfigPath, []byte(lifecycleConfig(up.Addr, marker)), 0o600); err != nil {
			t.Fatal(err)
		}
		next := upgradeOK(t, p, fmt.Sprintf("upgrade %d", u))
		waitPidGone(t, supervisor)
		supervisor = next
		if g := pr.gen(t); g != marker {
			t.Fatalf("after upgrade %d the kept-alive probe connection got %q, want %q from the new supervisor", u, g, marker)
		}
		if want := map[bool]string{true: v2, false: gwtest.Binary(t)}[u%2 == 1]; !sameFile(t, fmt.Sprintf("/proc/%d/exe", next), want) {
			t.Fatalf("upgrade %d: the new supervisor does not run the installed binary", u)
		}
		waitProgress(t, clients, 2)
	}
	for i, lc := range clients {
		if f := lc.failureList(); len(f) > 0 {
			t.Errorf("client %d (%s): %d failed requests during upgrades: %q", i, lc.kind, len(f), f)
		}
		if lc.kind != newConns {
			if d := lc.dials.Load() - dialsBefore[i]; d != 0 {
				t.Errorf("client %d (%s) opened %d new connections during reloads and upgrades, want 0", i, lc.kind, d)
			}
		}
	}
	if t.Failed() {
		return
	}

	// Phase 3: kill -9 of a worker, three times. Failures are allowed only
	// as connection errors, at most one per client per kill (its connection
	// was on the killed worker), and every client recovers.
	for k := range 3 {
		pids := p.WorkerPids()
		slot := k % 2
		victim := pids[slot]
		mark := p.Mark()
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		started := p.WaitLogSince(t, mark, "worker started", func(e map[string]any) bool {
			return intField(e, "slot") == slot && intField(e, "pid") != victim
		}, 15*time.Second)
		newPid := intField(started, "pid")
		p.WaitLogSince(t, mark, "worker ready", func(e map[string]any) bool { return intField(e, "pid") == newPid }, 15*time.Second)
		waitProgress(t, clients, 3)
	}
	stopClients()
	for i, lc := range clients {
		for _, f := range lc.failureList() {
			if !isConnErrorText(f) {
				t.Errorf("client %d (%s): a failure that is not a connection error: %s", i, lc.kind, f)
			}
		}
		if n := len(lc.failureList()); n > 3 {
			t.Errorf("client %d (%s): %d failures across 3 kills, want at most 3", i, lc.kind, n)
		}
	}
	// Only the current workers are left: every earlier worker is gone.
	current := map[int]bool{}
	for _, pid := range p.WorkerPids() {
		current[pid] = true
	}
	for _, e := range p.Logs() {
		if e.Msg() != "worker started" {
			continue
		}
		pid, _ := e.Int("pid")
		if !current[pid] && syscall.Kill(pid, 0) == nil {
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !bytes.Contains(st, []byte(") Z ")) {
				t.Errorf("worker %d of an earlier generation is still running", pid)
			}
		}
	}
}

// isConnErrorText matches the connection errors a client may see when the
// worker holding its connection is killed.
func isConnErrorText(s string) bool {
	for _, m := range []string{"EOF", "connection reset", "broken pipe", "server closed idle connection"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// upgradedRE finds the new supervisor's pid in "sluice upgrade" output.
var upgradedRE = regexp.MustCompile(`supervisor pid (\d+)`)

// installBinary puts src at path with a rename, the way a package manager
// replaces a binary, so that processes running the old file go on.
func installBinary(t *testing.T, path, src string) {
	t.Helper()
	tmp := path + ".new"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// sameFile reports whether a and b name the same file.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	sa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(sa, sb)
}

// waitPidGone waits until pid has exited (or is a zombie).
func waitPidGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || bytes.Contains(st, []byte(") Z ")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc for an exit we cannot wait on
	}
}
