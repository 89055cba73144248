package supervisor_test

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET; every datagram is delivered on msgs as its set of lines.
type notifySocket struct {
	path string
	msgs chan map[string]string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n := &notifySocket{path: path, msgs: make(chan map[string]string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			m := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
				key, value, _ := strings.Cut(line, "=")
				m[key] = value
			}
			n.msgs <- m
		}
	}()
	return n
}

// next returns the next datagram that is not a watchdog ping.
func (n *notifySocket) next(t *testing.T) map[string]string {
	t.Helper()
	for {
		select {
		case m := <-n.msgs:
			if _, ping := m["WATCHDOG"]; ping && len(m) == 1 {
				continue
			}
			return m
		case <-time.After(waitTimeout):
			t.Fatalf("no notification within %v", waitTimeout)
		}
	}
}

// startNotified starts sluice with NOTIFY_SOCKET and extra environment.
func startNotified(t *testing.T, text string, n *notifySocket, env ...string) *sluice {
	t.Helper()
	path := writeConfig(t, text)
	cmd := exec.Command(binary, "run", "-c", path)
	cmd.Env = append(append(cmd.Environ(), "NOTIFY_SOCKET="+n.path), env...)
	return startCmd(t, path, cmd)
}

func TestNotifiesSystemdOfEachState(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	n := newNotifySocket(t)
	good := proxyConfig(up.addr, controlPath(t), "public")
	s := startNotified(t, good, n)
	m := n.next(t)
	if m["READY"] != "1" || !strings.Contains(m["STATUS"], "generation 1") {
		t.Fatalf("first notification %v, want READY=1 and a STATUS naming generation 1", m)
	}
	for _, pid := range s.workers(t) {
		for _, kv := range environ(t, pid) {
			if strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
				t.Errorf("worker %d inherited %s", pid, kv)
			}
		}
	}

	checkReloading := func(m map[string]string) {
		t.Helper()
		if m["RELOADING"] != "1" || m["MONOTONIC_USEC"] == "" || strings.Trim(m["MONOTONIC_USEC"], "0123456789") != "" {
			t.Fatalf("notification %v, want RELOADING=1 with MONOTONIC_USEC", m)
		}
	}
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	checkReloading(n.next(t))
	if m := n.next(t); m["READY"] != "1" || !strings.Contains(m["STATUS"], "generation 2") {
		t.Fatalf("notification after reload %v, want READY=1 and a STATUS naming generation 2", m)
	}

	s.rewrite(t, strings.Replace(good, "workers = 2\n", "workers = 2\nworkerz = 3\n", 1))
	if _, code := runSluice(t, "reload", "-c", s.path); code == 0 {
		t.Fatal("sluice reload of an invalid config exited 0")
	}
	checkReloading(n.next(t))
	if m := n.next(t); m["READY"] != "1" || !strings.HasPrefix(m["STATUS"], "reload failed: ") || !strings.Contains(m["STATUS"], "server.workerz") {
		t.Fatalf("notification after a failed reload %v, want READY=1 and STATUS=reload failed: …server.workerz…", m)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := n.next(t); m["STOPPING"] != "1" || m["STATUS"] == "" {
		t.Fatalf("notification after SIGTERM %v, want STOPPING=1 and a STATUS", m)
	}
	if code := s.waitExit(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestPingsWatchdog(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	n := newNotifySocket(t)
	startNotified(t, proxyConfig(up.addr, controlPath(t), "public"), n, "WATCHDOG_USEC=100000")
	pings := 0
	deadline := time.After(waitTimeout)
	for pings < 3 {
		select {
		case m := <-n.msgs:
			if m["WATCHDOG"] == "1" {
				pings++
			}
		case <-deadline:
			t.Fatalf("%d WATCHDOG=1 pings within %v, want 3", pings, waitTimeout)
		}
	}
}
