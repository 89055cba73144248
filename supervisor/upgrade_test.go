package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// upgradeTimeout bounds a "sluice upgrade" command: it starts a supervisor
// and its workers, slower than a reload on a loaded machine.
const upgradeTimeout = 20 * time.Second

var (
	variantsMu sync.Mutex
	variants   = map[string]string{}
)

// variant returns a sluice binary built with ldflags, once per name.
func variant(t *testing.T, name, ldflags string) string {
	t.Helper()
	variantsMu.Lock()
	defer variantsMu.Unlock()
	if p, ok := variants[name]; ok {
		return p
	}
	p := filepath.Join(filepath.Dir(binary), "sluice-"+name)
	out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", p, "github.com/sluice-proxy/sluice").CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	variants[name] = p
	return p
}

// v2 is sluice built as version v2.
func v2(t *testing.T) string { return variant(t, "v2", "-X main.version=v2") }

// installBinary puts the test's sluice binary at a path of its own, from
// which a supervisor runs and which an upgrade replaces.
func installBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice")
	replaceBinary(t, path, binary)
	return path
}

// replaceBinary replaces the file at path by src with a rename, the way a
// package manager does, so that processes running the old file go on.
// Hard links avoid writing an executable that a concurrent fork could hold
// open for writing ("text file busy").
func replaceBinary(t *testing.T, path, src string) {
	t.Helper()
	tmp := path + ".new"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		b, rerr := os.ReadFile(src)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAt runs "exe run -c" on config text.
func startAt(t *testing.T, exe, text string) *sluice {
	t.Helper()
	path := writeConfig(t, text)
	return startCmd(t, path, exec.Command(exe, "run", "-c", path))
}

// genConfig is proxyConfig with GET /gen answered locally with body, so
// that a test tells generations apart.
func genConfig(up, ctl, body string) string {
	const def = "    [[route_config.virtual_host.route]]\n    name = \"default\"\n"
	gen := fmt.Sprintf("    [[route_config.virtual_host.route]]\n    name = \"gen\"\n    match = { path = \"/gen\" }\n    direct_response = { status = 200, body = %q }\n\n", body)
	return strings.Replace(proxyConfig(up, ctl, "public"), def, gen+def, 1)
}

var upgradedRE = regexp.MustCompile(`supervisor pid (\d+), generation (\d+) serving`)

// upgrade runs "sluice upgrade" against the control socket ctl and returns
// its output and exit code, and on success the new supervisor's pid, which
// is killed at cleanup.
func upgrade(t *testing.T, ctl string) (string, int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), upgradeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "upgrade", "--control", ctl).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sluice upgrade: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("sluice upgrade did not finish within %v", upgradeTimeout)
	}
	if ee != nil {
		return string(out), ee.ExitCode(), 0
	}
	m := upgradedRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("sluice upgrade output %q names no supervisor pid", out)
	}
	pid, _ := strconv.Atoi(m[1])
	killAtCleanup(t, pid)
	return string(out), 0, pid
}

// killAtCleanup kills a supervisor that the test did not start itself (its
// workers die with it).
func killAtCleanup(t *testing.T, pid int) {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// exePath returns the binary that pid runs.
func exePath(t *testing.T, pid int) string {
	t.Helper()
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPIDGone waits until pid no longer runs.
func waitPIDGone(t *testing.T, pid int) {
	t.Helper()
	waitGone(t, map[int]int{0: pid})
}

func TestUpgradeReplacesSupervisorAndHandsOverConnections(t *testing.T) {
	t.Parallel()
	// Built first: a build under load takes longer than the in-flight
	// request's read deadline, which runs from its send.
	next := v2(t)
	up := newUpstream(t)
	ctl := controlPath(t)
	exe := installBinary(t)
	s := startAt(t, exe, genConfig(up.addr, ctl, "one"))
	oldPID := s.cmd.Process.Pid
	addr := s.listenAddr(t, "public")
	old := s.workers(t)
	s.wait(t, "supervisor starting", map[string]any{"version": "dev", "pid": oldPID, "executable": exe}, nil)

	ka := dialKeepAlive(t, addr)
	if code, body := ka.roundTrip(t, "/gen"); code != 200 || body != "one" {
		t.Fatalf("before the upgrade: %d %q", code, body)
	}
	type result struct {
		code int
		body string
		err  error
	}
	slow := dialKeepAlive(t, addr)
	done := make(chan result, 1)
	go func() {
		code, body, err := slow.send("/slow")
		done <- result{code, body, err}
	}()
	select {
	case <-up.arrived:
	case <-time.After(waitTimeout):
		t.Fatal("slow request never reached the upstream")
	}

	s.rewrite(t, genConfig(up.addr, ctl, "two"))
	replaceBinary(t, exe, next)
	out, code, newPID := upgrade(t, ctl)
	if code != 0 || !strings.Contains(out, "generation 2 serving") {
		t.Fatalf("sluice upgrade = %d, %q; want 0 and generation 2 serving", code, out)
	}
	if newPID == oldPID {
		t.Fatalf("new supervisor pid %d is the old one's", newPID)
	}
	s.wait(t, "supervisor starting", map[string]any{"version": "v2", "pid": newPID}, nil)
	s.wait(t, "upgrade complete", map[string]any{"new_pid": newPID, "generation": 2, "previous_generation": 1}, nil)
	kept := s.wait(t, "listening", map[string]any{"listener": "public", "generation": 2}, nil)
	if kept.str("address") != addr || kept.str("sockets") != "kept" {
		t.Errorf("generation 2 listens on %v, want the kept sockets of %s", kept, addr)
	}
	for slot, pid := range s.pidsOf(t, 2) {
		if got := exePath(t, pid); got != exe {
			t.Errorf("new worker %d (slot %d) runs %q, want the v2 binary at %s", pid, slot, got, exe)
		}
		if want := fmt.Sprintf("sluice worker --slot %d --generation 2", slot); cmdline(t, pid) != want {
			t.Errorf("new worker %d: cmdline %q, want %q", pid, cmdline(t, pid), want)
		}
	}

	// The request in flight at the upgrade completes on its old worker.
	close(up.release)
	select {
	case r := <-done:
		if r.err != nil || r.code != 200 || r.body != "slow ok" {
			t.Fatalf("in-flight request: %d %q %v, want 200 \"slow ok\"", r.code, r.body, r.err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("in-flight request did not complete")
	}
	// The old supervisor exits as soon as its workers are gone, long
	// before the 60 s drain timeout.
	if code := s.waitExit(t); code != 0 {
		t.Fatalf("old supervisor exit code %d, want 0", code)
	}
	waitGone(t, old)
	s.wait(t, "previous supervisor exited", map[string]any{"previous_pid": oldPID}, nil)
	// Both keep-alive connections were handed to the new supervisor's
	// workers: same connections, answers from generation 2.
	if code, body := ka.roundTrip(t, "/gen"); code != 200 || body != "two" {
		t.Fatalf("keep-alive connection after the upgrade: %d %q, want 200 \"two\"", code, body)
	}
	if code, body := slow.roundTrip(t, "/gen"); code != 200 || body != "two" {
		t.Fatalf("connection of the in-flight request after the upgrade: %d %q, want 200 \"two\"", code, body)
	}
	if n := listeningSockets(t, portOf(t, addr)); n != 2 {
		t.Errorf("%d sockets listen on %s after the upgrade, want 2", n, addr)
	}
	if code, body := get(t, addr, "/"); code != 200 || body != "ok" {
		t.Fatalf("after the upgrade: %d %q", code, body)
	}

	// Rollback: SIGUSR2 to the new supervisor upgrades again, to the first
	// binary.
	gen2 := s.pidsOf(t, 2)
	s.rewrite(t, genConfig(up.addr, ctl, "three"))
	replaceBinary(t, exe, binary)
	if err := syscall.Kill(newPID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	done3 := s.wait(t, "upgrade complete", map[string]any{"generation": 3, "previous_generation": 2}, nil)
	thirdPID := done3.int(t, "new_pid")
	killAtCleanup(t, thirdPID)
	s.wait(t, "supervisor starting", map[string]any{"version": "dev", "pid": thirdPID}, nil)
	waitPIDGone(t, newPID)
	waitGone(t, gen2)
	if code, body := ka.roundTrip(t, "/gen"); code != 200 || body != "three" {
		t.Fatalf("keep-alive connection after the second upgrade: %d %q, want 200 \"three\"", code, body)
	}
	if n := listeningSockets(t, portOf(t, addr)); n != 2 {
		t.Errorf("%d sockets listen on %s after the second upgrade, want 2", n, addr)
	}
}

func TestFailedUpgradeKeepsOldGenerationServing(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	exe := installBinary(t)
	good := genConfig(up.addr, ctl, "one")
	s := startAt(t, exe, good)
	sup := s.cmd.Process.Pid
	addr := s.listenAddr(t, "public")
	pids := s.workers(t)
	ka := dialKeepAlive(t, addr)

	tests := []struct {
		name   string
		binary func() string
		config string
		want   string
	}{
		{"binary exits 1", func() string { return script(t, "exit 1") }, good, "exited before it was ready"},
		{"incompatible protocol version", func() string {
			return variant(t, "proto99", "-X github.com/sluice-proxy/sluice/hotrestart.versionOverride=99")
		}, good, "incompatible binary"},
		{"invalid config", func() string { return v2(t) }, strings.Replace(good, "workers = 2\n", "workers = 2\nworkerz = 3\n", 1), "server.workerz"},
	}
	for i, tt := range tests {
		replaceBinary(t, exe, tt.binary())
		s.rewrite(t, tt.config)
		out, code, _ := upgrade(t, ctl)
		if code == 0 || !strings.Contains(out, "upgrade failed") || !strings.Contains(out, tt.want) {
			t.Fatalf("%s: sluice upgrade = %d, %q; want non-zero, upgrade failed, %q", tt.name, code, out, tt.want)
		}
		// The old supervisor's line: it names its serving generation.
		s.wait(t, "upgrade failed", map[string]any{"generation": 1}, func(e entry) bool { return strings.Contains(e.str("error"), tt.want) })
		waitPIDGone(t, s.waitNth(t, "upgrade started", i).int(t, "new_pid"))
		if !alive(sup) {
			t.Fatalf("%s: the old supervisor is gone", tt.name)
		}
		for slot, pid := range pids {
			if !alive(pid) {
				t.Fatalf("%s: worker %d of slot %d is gone", tt.name, pid, slot)
			}
		}
		if code, body := ka.roundTrip(t, "/gen"); code != 200 || body != "one" {
			t.Fatalf("%s: keep-alive connection: %d %q", tt.name, code, body)
		}
		if n := listeningSockets(t, portOf(t, addr)); n != 2 {
			t.Errorf("%s: %d sockets listen on %s, want 2", tt.name, n, addr)
		}
		if code, body := get(t, addr, "/gen"); code != 200 || body != "one" {
			t.Fatalf("%s: new connection: %d %q", tt.name, code, body)
		}
	}
	if n := s.count("worker ready", map[string]any{"generation": 2}); n != 0 {
		t.Errorf("%d workers of a failed upgrade got ready", n)
	}
	// The next upgrade works.
	replaceBinary(t, exe, v2(t))
	s.rewrite(t, good)
	if out, code, _ := upgrade(t, ctl); code != 0 {
		t.Fatalf("upgrade after the failures = %d, %q", code, out)
	}
}

// waitNth returns the (n+1)th log line with msg.
func (s *sluice) waitNth(t *testing.T, msg string, n int) entry {
	t.Helper()
	seen := 0
	return s.wait(t, msg, nil, func(entry) bool {
		seen++
		return seen == n+1
	})
}

func TestConcurrentUpgradeAndReloadAreRefusedAndSIGTERMAbandons(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	exe := installBinary(t)
	s := startAt(t, exe, proxyConfig(up.addr, ctl, "public"))
	addr := s.listenAddr(t, "public")
	pids := s.workers(t)
	// A new binary that never answers keeps the upgrade in progress.
	replaceBinary(t, exe, script(t, "exec cat <&3 >/dev/null"))
	first := controlRequest(t, ctl, "upgrade")
	newPID := s.wait(t, "upgrade started", nil, nil).int(t, "new_pid")
	killAtCleanup(t, newPID)

	out, code := runSluice(t, "upgrade", "--control", ctl)
	if code == 0 || !strings.Contains(out, "upgrade already in progress") {
		t.Errorf("second upgrade = %d, %q; want non-zero, upgrade already in progress", code, out)
	}
	s.wait(t, "upgrade refused", nil, nil)
	out, code = runSluice(t, "reload", "--control", ctl)
	if code == 0 || !strings.Contains(out, "upgrade in progress") {
		t.Errorf("reload during an upgrade = %d, %q; want non-zero, upgrade in progress", code, out)
	}
	if code, body := get(t, addr, "/"); code != 200 || body != "ok" {
		t.Fatalf("during the upgrade: %d %q", code, body)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("worker %d gone during the upgrade", pid)
		}
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := controlAnswer(t, first)
	if r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), "shutting down") {
		t.Errorf("upgrade abandoned by SIGTERM answered %v, want a shutting down error", r)
	}
	waitPIDGone(t, newPID)
	if code := s.waitExit(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestUpgradeDuringReloadIsRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	exe := installBinary(t)
	s := startAt(t, exe, proxyConfig(up.addr, ctl, "public"))
	s.workers(t)
	// Both requests wait in the socket while the supervisor is stopped;
	// whichever runs first, the other arrives while it is in progress.
	sup := s.cmd.Process.Pid
	if err := syscall.Kill(sup, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	a, b := controlRequest(t, ctl, "reload"), controlRequest(t, ctl, "upgrade")
	if err := syscall.Kill(sup, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ra, rb := controlAnswer(t, a), controlAnswer(t, b)
	if pid, ok := rb["pid"].(float64); ok {
		killAtCleanup(t, int(pid))
	}
	switch {
	case ra["ok"] == true && rb["ok"] == false:
		if !strings.Contains(fmt.Sprint(rb["error"]), "reload in progress") {
			t.Errorf("upgrade during a reload answered %v, want reload in progress", rb)
		}
	case rb["ok"] == true && ra["ok"] == false:
		if !strings.Contains(fmt.Sprint(ra["error"]), "upgrade in progress") {
			t.Errorf("reload during an upgrade answered %v, want upgrade in progress", ra)
		}
	default:
		t.Errorf("reload answered %v, upgrade %v; want exactly one refused", ra, rb)
	}
}

func TestUpgradeNotifiesSystemdOfNewMainPID(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	n := newNotifySocket(t)
	ctl := controlPath(t)
	exe := installBinary(t)
	path := writeConfig(t, proxyConfig(up.addr, ctl, "public"))
	cmd := exec.Command(exe, "run", "-c", path)
	cmd.Env = append(cmd.Environ(), "NOTIFY_SOCKET="+n.path)
	s := startCmd(t, path, cmd)
	if m := n.next(t); m["READY"] != "1" {
		t.Fatalf("first notification %v, want READY=1", m)
	}
	replaceBinary(t, exe, v2(t))
	out, code, newPID := upgrade(t, ctl)
	if code != 0 {
		t.Fatalf("sluice upgrade = %d, %q", code, out)
	}
	if m := n.next(t); m["RELOADING"] != "1" || m["MONOTONIC_USEC"] == "" {
		t.Fatalf("notification at the upgrade %v, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	m := n.next(t)
	if m["MAINPID"] != strconv.Itoa(newPID) || m["READY"] != "1" || !strings.Contains(m["STATUS"], "generation 2") {
		t.Fatalf("notification after the upgrade %v, want MAINPID=%d, READY=1 and a STATUS naming generation 2", m, newPID)
	}
	if code := s.waitExit(t); code != 0 {
		t.Fatalf("old supervisor exit code %d, want 0", code)
	}
	// Only the new supervisor speaks to systemd; its workers do not see
	// NOTIFY_SOCKET or the upgrade channel.
	for _, pid := range s.pidsOf(t, 2) {
		for _, kv := range environ(t, pid) {
			if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "SLUICE_UPGRADE_FD=") {
				t.Errorf("new worker %d inherited %s", pid, kv)
			}
		}
	}
	// The old supervisor said nothing more (no STOPPING=1) on its way out.
	select {
	case m := <-n.msgs:
		t.Errorf("notification after the old supervisor exited: %v", m)
	default:
	}
}
