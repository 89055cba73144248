package supervisor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upstream is a real HTTP server on 127.0.0.1:0. GET /slow signals on
// arrived and answers only once release is closed; every other path
// answers "ok" at once.
type upstream struct {
	addr    string
	arrived chan struct{}
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: ln.Addr().String(), arrived: make(chan struct{}, 16), release: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			u.arrived <- struct{}{}
			<-u.release
			io.WriteString(w, "slow ok")
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		srv.Close()
	})
	return u
}

// proxyConfig returns a config with a listener on 127.0.0.1:0 for each
// name, all routed to up, with its control socket at ctl and a drain
// timeout far longer than any wait of these tests: a worker that exits
// within waitTimeout did not wait for it.
func proxyConfig(up, ctl string, names ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[server]
workers = 2
gomaxprocs = 1
drain_timeout = "60s"
control_socket = %q

[log]
level = "info"
format = "json"
`, ctl)
	for _, name := range names {
		fmt.Fprintf(&b, `
[[listener]]
name = %q
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
`, name)
	}
	fmt.Fprintf(&b, `
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
endpoints = [%q]
`, up)
	return b.String()
}

// controlPath returns a fresh control socket path.
func controlPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "ctl.sock")
}

// rewrite replaces the config file of s.
func (s *sluice) rewrite(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(s.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runSluice runs the sluice binary with args and returns its combined
// output and exit code.
func runSluice(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sluice %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("sluice %v did not finish within %v", args, waitTimeout)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	return string(out), code
}

// get sends GET path through the proxy at addr on a new connection and
// returns the status and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitTimeout}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: read body: %v", addr, path, err)
	}
	return resp.StatusCode, string(body)
}

// keepAlive is a raw HTTP/1.1 client connection that stays open.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

// roundTrip sends one GET and reads the whole response.
func (k *keepAlive) roundTrip(t *testing.T, path string) (int, string) {
	t.Helper()
	code, body, err := k.send(path)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// send is roundTrip for goroutines other than the test's.
func (k *keepAlive) send(path string) (int, string, error) {
	k.c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: sluice.test\r\n\r\n", path); err != nil {
		return 0, "", fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, "", fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, string(body), nil
}

// pidsOf returns the pids of the "worker ready" lines of generation gen,
// by slot.
func (s *sluice) pidsOf(t *testing.T, gen int) map[int]int {
	t.Helper()
	pids := map[int]int{}
	for slot := 0; slot < 2; slot++ {
		pids[slot] = s.wait(t, "worker ready", map[string]any{"slot": slot, "generation": gen}, nil).int(t, "pid")
	}
	return pids
}

// count returns how many log lines so far have msg and the fields of want.
func (s *sluice) count(msg string, want map[string]any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.lines {
		if e.str("msg") == msg && fieldsEqual(e, want) {
			n++
		}
	}
	return n
}

// cmdline returns the command line of pid, space-separated.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), " ")
}

// environ returns the environment of pid.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// portOf returns the port of host:port.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ta.Port
}

// recvTimeout bounds recv: longer than waitTimeout, since what it waits for
// (an upstream reached through sluice, a client's whole exchange) may
// itself include a waitTimeout.
const recvTimeout = 5 * waitTimeout

// recv returns the next value from ch, failing the test with what if none
// arrives within recvTimeout, so that a lost request fails its test by name
// instead of hanging the package until go test's timeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(recvTimeout):
		t.Fatalf("no %s within %v", what, recvTimeout)
		panic("unreachable")
	}
}
