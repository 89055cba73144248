package supervisor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the sluice binary built by TestMain.
var binary string

// waitTimeout bounds every wait of these tests.
const waitTimeout = 4 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(envActivate) != "" {
		os.Exit(execActivated())
	}
	dir, err := os.MkdirTemp("", "sluice-process-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/sluice-proxy/sluice").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// validConfig returns a config with one listener on 127.0.0.1:0, two
// workers, and a cluster pointing at a loopback address.
func validConfig(t *testing.T) string {
	t.Helper()
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return `[server]
workers = 2
gomaxprocs = 1
drain_timeout = "2s"

[log]
level = "info"
format = "json"

[[listener]]
name = "public"
address = "127.0.0.1:0"

  [[listener.filter_chain]]
  name = "default"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress"
    route_config = "local"

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]

    [[route_config.virtual_host.route]]
    name = "default"
    match = { prefix = "/" }
    cluster = "backend"

[[cluster]]
name = "backend"
endpoints = ["` + up.Addr().String() + `"]
`
}

// writeConfig writes text to a sluice.toml in a fresh directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// entry is one JSON log line.
type entry map[string]any

func (e entry) str(key string) string { return fmt.Sprint(e[key]) }

func (e entry) int(t *testing.T, key string) int {
	t.Helper()
	f, ok := e[key].(float64)
	if !ok {
		t.Fatalf("log line %v has no number %q", e, key)
	}
	return int(f)
}

// sluice is a running "sluice run" process and the log lines it wrote.
type sluice struct {
	path   string // the config file
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's result, set before exited closes

	eof     chan struct{} // closed once every writer closed stderr
	mu      sync.Mutex
	lines   []entry
	raw     []string
	changed chan struct{} // closed and replaced whenever a line arrives
}

// start runs "sluice run -c" on config text. The process is killed at
// cleanup if the test has not stopped it.
func start(t *testing.T, text string) *sluice {
	t.Helper()
	path := writeConfig(t, text)
	return startCmd(t, path, exec.Command(binary, "run", "-c", path))
}

// startCmd starts cmd, a command that becomes "sluice run -c path", and
// collects its log lines.
func startCmd(t *testing.T, path string, cmd *exec.Cmd) *sluice {
	t.Helper()
	// Each supervisor gets its own default control socket: with the
	// system's /run/sluice/control.sock, a test's supervisor would find
	// another one (a parallel test's, a sluice running on the machine)
	// serving it and refuse to start.
	env := cmd.Environ()
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "RUNTIME_DIRECTORY=") }) {
		dir, err := os.MkdirTemp("", "sluice-run") // short: a unix socket path has at most 107 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		cmd.Env = append(env, "RUNTIME_DIRECTORY="+dir)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &sluice{
		path:    path,
		cmd:     cmd,
		exited:  make(chan struct{}),
		eof:     make(chan struct{}),
		changed: make(chan struct{}),
	}
	s.cmd.Stderr = w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go s.read(r)
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			s.mu.Lock()
			t.Logf("sluice stderr:\n%s", strings.Join(s.raw, "\n"))
			s.mu.Unlock()
		}
	})
	return s
}

// read collects the log lines of r (the stderr of the supervisor and its
// workers) until every writer has closed it.
func (s *sluice) read(r *os.File) {
	defer close(s.eof)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			e = nil
		}
		s.mu.Lock()
		s.raw = append(s.raw, sc.Text())
		if e != nil {
			s.lines = append(s.lines, e)
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// wait returns the first log line whose msg is msg, whose fields equal
// those of want (compared as printed), and that satisfies match if not nil.
// It fails the test if no such line arrives within waitTimeout.
func (s *sluice) wait(t *testing.T, msg string, want map[string]any, match func(entry) bool) entry {
	t.Helper()
	deadline := time.After(waitTimeout)
	seen := 0
	for {
		s.mu.Lock()
		lines, changed := s.lines, s.changed
		s.mu.Unlock()
		for _, e := range lines[seen:] {
			if e.str("msg") == msg && fieldsEqual(e, want) && (match == nil || match(e)) {
				return e
			}
		}
		seen = len(lines)
		select {
		case <-changed:
		case <-s.eof:
			s.mu.Lock()
			more := len(s.lines) > seen
			s.mu.Unlock()
			if !more {
				t.Fatalf("no log line msg=%q %v: sluice closed its stderr", msg, want)
			}
		case <-deadline:
			t.Fatalf("no log line msg=%q %v within %v", msg, want, waitTimeout)
		}
	}
}

func fieldsEqual(e entry, want map[string]any) bool {
	for k, v := range want {
		if e.str(k) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// waitExit waits for the supervisor to exit and returns its exit code.
func (s *sluice) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(waitTimeout):
		t.Fatalf("sluice still running after %v", waitTimeout)
	}
	var ee *exec.ExitError
	if s.err != nil && !errors.As(s.err, &ee) {
		t.Fatalf("wait: %v", s.err)
	}
	return s.cmd.ProcessState.ExitCode()
}

// workers waits until every slot is ready and returns the worker pids by
// slot.
func (s *sluice) workers(t *testing.T) map[int]int {
	t.Helper()
	s.wait(t, "ready", nil, nil)
	pids := map[int]int{}
	for slot := 0; slot < 2; slot++ {
		e := s.wait(t, "worker ready", map[string]any{"slot": slot}, nil)
		pids[slot] = e.int(t, "pid")
	}
	return pids
}

// listenAddr waits for the listening line of the named listener and
// returns its address.
func (s *sluice) listenAddr(t *testing.T, name string) string {
	t.Helper()
	return s.wait(t, "listening", map[string]any{"listener": name}, nil).str("address")
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// waitGone polls /proc until none of pids runs, failing the test after
// waitTimeout.
func waitGone(t *testing.T, pids map[int]int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers %v still running after %v", left, waitTimeout)
		}
		<-tick.C
	}
}

// listeningSockets counts the TCP sockets in LISTEN state on port.
func listeningSockets(t *testing.T, port int) int {
	t.Helper()
	return socketsOnPort(t, port, "0A", "/proc/net/tcp", "/proc/net/tcp6")
}

// socketsOnPort counts the sockets of the /proc/net tables files whose
// local port is port and, unless state is empty, whose state is state (hex,
// as the table shows it).
func socketsOnPort(t *testing.T, port int, state string, files ...string) int {
	t.Helper()
	n := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || (state != "" && f[3] != state) {
				continue
			}
			i := strings.LastIndexByte(f[1], ':')
			p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
			if err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

func TestListeningLineCarriesTheBoundPort(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	addr := s.listenAddr(t, "public")
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	if host != "127.0.0.1" || port == 0 {
		t.Fatalf("listening on %q, want 127.0.0.1 and a real port", addr)
	}
	// reuse_port: one socket per worker, both bound to the chosen port.
	if n := listeningSockets(t, port); n != 2 {
		t.Errorf("%d sockets listen on port %d, want 2 (one per worker)", n, port)
	}
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	c.Close()
}

func TestWorkersRunAsSluiceWorkerWithSlot(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	for slot, pid := range s.workers(t) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), " ")
		if want := fmt.Sprintf("sluice worker --slot %d --generation 1", slot); got != want {
			t.Errorf("worker %d: cmdline %q, want %q", pid, got, want)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(append([]byte{0}, env...), []byte("\x00GOMAXPROCS=1\x00")) {
			t.Errorf("worker %d: environment lacks GOMAXPROCS=1", pid)
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid != s.cmd.Process.Pid {
			t.Errorf("worker %d: parent %d, want the supervisor %d", pid, ppid, s.cmd.Process.Pid)
		}
	}
}

func TestKilledWorkerIsRestartedInItsSlot(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	old := s.workers(t)[1]
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := s.wait(t, "worker exited", map[string]any{"slot": 1, "pid": old, "generation": 1}, nil)
	if e.str("signal") != "SIGKILL" || !strings.Contains(e.str("reason"), "SIGKILL") {
		t.Errorf("worker exited line %v does not name SIGKILL", e)
	}
	if _, ok := e["backoff"]; !ok {
		t.Errorf("worker exited line %v has no backoff", e)
	}
	notOld := func(e entry) bool { return e.int(t, "pid") != old }
	s.wait(t, "worker started", map[string]any{"slot": 1, "generation": 1}, notOld)
	s.wait(t, "worker ready", map[string]any{"slot": 1, "generation": 1}, notOld)
}

func TestConnectionQueuesWhileWorkersAreDead(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	addr := s.listenAddr(t, "public")
	pids := s.workers(t)
	sup := s.cmd.Process.Pid
	// Stop the supervisor so that it cannot restart anything, then kill
	// every worker: no process accepts on the sockets any more.
	if err := syscall.Kill(sup, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(sup, syscall.SIGCONT)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitGone(t, pids)
	// Several connections, so that both sockets of the SO_REUSEPORT group
	// get some: the kernel completes each handshake and queues it.
	var conns []net.Conn
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, waitTimeout)
		if err != nil {
			t.Fatalf("connect %d while no worker runs: %v", i, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	if err := syscall.Kill(sup, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for slot, pid := range pids {
		notOld := func(e entry) bool { return e.int(t, "pid") != pid }
		s.wait(t, "worker ready", map[string]any{"slot": slot}, notOld)
	}
	// The replacements took over the same sockets: the queued connections
	// were not reset.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("queued connection %d: read = %v, want it still open", i, err)
		}
	}
}

func TestSIGTERMDrainsWorkersAndExitsZero(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	addr := s.listenAddr(t, "public")
	pids := s.workers(t)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for slot := range pids {
		s.wait(t, "worker exited", map[string]any{"slot": slot, "status": 0}, nil)
	}
	if code := s.waitExit(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	waitGone(t, pids)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after shutdown", addr)
	}
}

func TestSIGINTExitsPromptly(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	pids := s.workers(t)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := s.waitExit(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	waitGone(t, pids)
}

func TestSupervisorKilledTakesWorkersDown(t *testing.T) {
	t.Parallel()
	s := start(t, validConfig(t))
	pids := s.workers(t)
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.waitExit(t)
	waitGone(t, pids)
}

func TestInvalidConfigIsRejectedWithFileLineAndKey(t *testing.T) {
	t.Parallel()
	// Line 3 holds an unknown key.
	path := writeConfig(t, "[server]\nworkers = 2\nworkerz = 3\n")
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, cmd, "-c", path).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("sluice %s: %v, want exit code 1\n%s", cmd, err, out)
			}
			if !bytes.Contains(out, []byte(path+":3")) || !bytes.Contains(out, []byte("server.workerz")) {
				t.Errorf("sluice %s output lacks %s:3 and server.workerz:\n%s", cmd, path, out)
			}
			if bytes.Contains(out, []byte(`"listening"`)) {
				t.Errorf("sluice %s bound a listener with an invalid config:\n%s", cmd, out)
			}
		})
	}
}

func TestValidateAcceptsAValidConfig(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, validConfig(t))
	out, err := exec.Command(binary, "validate", "-c", path).CombinedOutput()
	if err != nil || string(out) != path+": ok\n" {
		t.Fatalf("sluice validate = %v, %q; want %q", err, out, path+": ok\n")
	}
}

// TestSubcommandHelpExitsZeroAndSaysWhatTheCommandDoes runs each command
// with --help: help asked for is not an error, goes to stdout once, and
// describes the command; a missing -c still exits 2 with the usage.
func TestSubcommandHelpExitsZeroAndSaysWhatTheCommandDoes(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"run":         "in the foreground",
		"validate":    "check a config file",
		"reload":      "reload its config file",
		"upgrade":     "start the binary now at its path",
		"reopen-logs": "reopen its access log files",
	}
	for cmd, what := range want {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		c := exec.CommandContext(ctx, binary, cmd, "--help")
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		cancel()
		if err != nil {
			t.Errorf("sluice %s --help: %v, want exit 0\n%s%s", cmd, err, stdout.String(), stderr.String())
			continue
		}
		out := stdout.String()
		if !strings.Contains(out, "usage: sluice "+cmd) || !strings.Contains(out, what) || strings.Count(out, "usage:") != 1 {
			t.Errorf("sluice %s --help printed %q (stderr %q), want one usage line and %q", cmd, out, stderr.String(), what)
		}
	}
	out, err := exec.Command(binary, "run").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !bytes.Contains(out, []byte("-c FILE is required")) {
		t.Errorf("sluice run without -c: %v\n%s; want exit 2 saying -c FILE is required", err, out)
	}
}

// TestControlCommandWithoutSupervisorSaysWhatToCheck runs the control
// commands against a control socket nobody serves: each exits 1 and says
// to check that sluice runs and which file or socket to name, not only the
// dial error.
func TestControlCommandWithoutSupervisorSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "control.sock")
	for cmd, signal := range map[string]string{"reload": "SIGHUP", "upgrade": "SIGUSR2", "reopen-logs": "SIGUSR1"} {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		out, err := exec.CommandContext(ctx, binary, cmd, "--control", sock).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("sluice %s with no supervisor: %v, want exit 1\n%s", cmd, err, out)
			continue
		}
		for _, want := range []string{sock, "is sluice running?", "server.control_socket", signal} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("sluice %s output lacks %q:\n%s", cmd, want, out)
			}
		}
	}
}
