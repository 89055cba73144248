package gwtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proxy is a running `sluice run` process tree (supervisor and workers)
// started by Start. Its methods are safe for concurrent use, except those
// taking a testing.TB, which must be called from the test's goroutine.
type Proxy struct {
	// ConfigPath is the config file the proxy was started with.
	ConfigPath string
	// RuntimeDir is the proxy's RUNTIME_DIRECTORY; its control socket is
	// RuntimeDir/control.sock unless the config names another.
	RuntimeDir string

	t    testing.TB
	cmd  *exec.Cmd
	book *logBook

	exited   chan struct{} // closed when the supervisor has exited
	exitCode int           // set before exited is closed

	stopOnce sync.Once
}

// Option tunes Start.
type Option func(*options)

type options struct {
	readyTimeout time.Duration
	env          []string
	binary       string
}

// WithBinary runs the sluice binary at path instead of the one Binary
// builds (a test that upgrades replaces the file at path).
func WithBinary(path string) Option {
	return func(o *options) { o.binary = path }
}

// WithReadyTimeout sets how long Start waits for the "ready" log line
// (default 15s).
func WithReadyTimeout(d time.Duration) Option {
	return func(o *options) { o.readyTimeout = d }
}

// WithEnv adds "KEY=value" entries to the proxy's environment.
func WithEnv(kv ...string) Option {
	return func(o *options) { o.env = append(o.env, kv...) }
}

// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// dumpLines is how many output lines a failed test shows.
const dumpLines = 200

// Start writes tomlText to a file in t.TempDir, starts `sluice run -c` on it
// and returns once the supervisor logged "ready". The test fails if the
// process exits or is not ready within the ready timeout. The proxy is
// stopped (see Stop) when the test ends, and if the test failed its last 200
// output lines are logged.
func Start(t testing.TB, tomlText string, opts ...Option) *Proxy {
	t.Helper()
	o := options{readyTimeout: 15 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	bin := o.binary
	if bin == "" {
		bin = Binary(t)
	}
	cfg := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(cfg, []byte(tomlText), 0o600); err != nil {
		t.Fatalf("gwtest: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("gwtest: %v", err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stdout = w
	cmd.Stderr = w
	runtimeDir := shortTempDir(t)
	cmd.Env = append(cmd.Environ(), "RUNTIME_DIRECTORY="+runtimeDir)
	cmd.Env = append(cmd.Env, o.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("gwtest: start sluice: %v", err)
	}
	w.Close()
	p := &Proxy{ConfigPath: cfg, RuntimeDir: runtimeDir, t: t, cmd: cmd, book: newLogBook(), exited: make(chan struct{})}
	fed := make(chan struct{})
	go func() {
		p.book.feed(r)
		r.Close()
		close(fed)
	}()
	go func() {
		err := cmd.Wait()
		p.exitCode = cmd.ProcessState.ExitCode()
		if err != nil && p.exitCode == 0 {
			p.exitCode = -1
		}
		// The last lines the supervisor and its workers wrote may still be
		// in the pipe: exited means Logs has them. A process that outlives
		// the supervisor and keeps the pipe open is not waited for long.
		select {
		case <-fed:
		case <-time.After(feedDrainTimeout):
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			// Warnings first: in a long run they are what explains a
			// failure, and the tail may not reach back to them.
			if w := p.book.warnings(dumpLines); len(w) > 0 {
				t.Logf("gwtest: warnings and errors sluice (pid %d) logged:\n%s", p.Pid(), strings.Join(w, "\n"))
			}
			t.Logf("gwtest: last output lines of sluice (pid %d):\n%s", p.Pid(), strings.Join(p.book.tail(dumpLines), "\n"))
		}
	})
	t.Cleanup(func() { p.Stop() })

	if p.book.wait(0, "ready", nil, time.Now().Add(o.readyTimeout)) == nil {
		select {
		case <-p.exited:
			t.Fatalf("gwtest: sluice exited with code %d before it was ready", p.exitCode)
		default:
			t.Fatalf("gwtest: sluice not ready within %v", o.readyTimeout)
		}
	}
	return p
}

// Pid returns the supervisor's process id.
func (p *Proxy) Pid() int { return p.cmd.Process.Pid }

// Addr returns the address the named listener is bound to, from the latest
// "listening" log line for it. The test fails if there is none.
func (p *Proxy) Addr(listener string) string {
	p.t.Helper()
	addr := ""
	for _, e := range p.book.snapshot() {
		if e.Msg() == "listening" && e.Str("listener") == listener {
			addr = e.Str("address")
		}
	}
	if addr == "" {
		p.t.Fatalf("gwtest: no listening log line for listener %q", listener)
	}
	return addr
}

// WorkerPids returns slot → pid of the workers, from the latest "worker
// started" log line of each slot.
func (p *Proxy) WorkerPids() map[int]int {
	pids := make(map[int]int)
	for _, e := range p.book.snapshot() {
		if e.Msg() != "worker started" {
			continue
		}
		slot, ok1 := e.Int("slot")
		pid, ok2 := e.Int("pid")
		if ok1 && ok2 {
			pids[slot] = pid
		}
	}
	return pids
}

// Logs returns the JSON log entries seen so far.
func (p *Proxy) Logs() []Entry { return p.book.snapshot() }

// Mark returns a position in the log: WaitLogSince(mark, ...) considers only
// entries logged after Mark was called.
func (p *Proxy) Mark() int { return p.book.mark() }

// WaitLog returns the first entry, from the start of the log, whose msg is
// msg and that match accepts (nil accepts any). It fails the test if none
// appears within timeout or the output ends first.
func (p *Proxy) WaitLog(t testing.TB, msg string, match func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	return p.WaitLogSince(t, 0, msg, match, timeout)
}

// WaitLogSince is WaitLog considering only entries at or after mark (see
// Mark). An empty msg matches every entry, leaving the choice to match.
func (p *Proxy) WaitLogSince(t testing.TB, mark int, msg string, match func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	var m func(Entry) bool
	if match != nil {
		m = func(e Entry) bool { return match(e) }
	}
	e := p.book.wait(mark, msg, m, time.Now().Add(timeout))
	if e == nil {
		t.Fatalf("gwtest: no %q log line within %v", msg, timeout)
	}
	return e
}

// Signal sends sig to the supervisor.
func (p *Proxy) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("gwtest: signal %v: %w", sig, err)
	}
	return nil
}

// Exited returns a channel closed once the supervisor has exited.
func (p *Proxy) Exited() <-chan struct{} { return p.exited }

// Wait waits for the supervisor to exit and returns its exit code (-1 if a
// signal killed it).
func (p *Proxy) Wait() int {
	<-p.exited
	return p.exitCode
}

// feedDrainTimeout bounds how long exited waits, after the supervisor
// exited, for the end of its output.
const feedDrainTimeout = 2 * time.Second

// Stop sends SIGTERM to the supervisor and waits for it to exit; if it has
// not exited within 10s, it kills the whole process group with SIGKILL. It
// returns the exit code. Stop is idempotent and is called when the test ends.
func (p *Proxy) Stop() int {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			p.t.Logf("gwtest: sluice did not exit within %v of SIGTERM; killing its process group", stopTimeout)
			// The supervisor is not reaped yet, so its process group is
			// still ours.
			syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.exited
		}
	})
	return p.Wait()
}

// shortTempDir returns a fresh directory with a short path (unix socket
// paths are limited to 108 bytes), removed when the test ends.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatalf("gwtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
