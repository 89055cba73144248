package supervisor_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReloadCommandStartsNewGenerationAndDrainsOld(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, proxyConfig(up.addr, controlPath(t), "public"))
	addr := s.listenAddr(t, "public")
	old := s.workers(t)
	ka := dialKeepAlive(t, addr)
	if code, body := ka.roundTrip(t, "/"); code != 200 || body != "ok" {
		t.Fatalf("before reload: %d %q", code, body)
	}

	out, code := runSluice(t, "reload", "-c", s.path)
	if code != 0 || !strings.Contains(out, "generation 2 serving") {
		t.Fatalf("sluice reload = %d, %q; want 0 and generation 2 serving", code, out)
	}
	s.wait(t, "reload complete", map[string]any{"generation": 2, "previous_generation": 1}, nil)
	kept := s.wait(t, "listening", map[string]any{"listener": "public", "generation": 2}, nil)
	if kept.str("address") != addr || kept.str("sockets") != "kept" {
		t.Errorf("generation 2 listens on %v, want the kept sockets of %s", kept, addr)
	}
	for slot, pid := range s.pidsOf(t, 2) {
		if want := fmt.Sprintf("sluice worker --slot %d --generation 2", slot); cmdline(t, pid) != want {
			t.Errorf("new worker %d: cmdline %q, want %q", pid, cmdline(t, pid), want)
		}
		// ps -e and top show the worker by name, not as "exe".
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || string(comm) != "sluice-worker\n" {
			t.Errorf("new worker %d: comm %q (%v), want sluice-worker", pid, comm, err)
		}
	}
	// The old workers exit as soon as their connections are gone, long
	// before the 60 s drain timeout.
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	waitGone(t, old)
	// The idle keep-alive connection was handed to generation 2: it stays
	// open, and the old workers being gone, its next response can only
	// come from the new generation.
	if code, body := ka.roundTrip(t, "/"); code != 200 || body != "ok" {
		t.Fatalf("keep-alive connection after the reload: %d %q", code, body)
	}
	if n := listeningSockets(t, portOf(t, addr)); n != 2 {
		t.Errorf("%d sockets listen on %s after the reload, want 2", n, addr)
	}
	if code, body := get(t, addr, "/"); code != 200 || body != "ok" {
		t.Fatalf("after reload: %d %q", code, body)
	}
}

func TestSIGHUPReloads(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, proxyConfig(up.addr, controlPath(t), "public"))
	addr := s.listenAddr(t, "public")
	old := s.workers(t)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "reloading", map[string]any{"cause": "SIGHUP"}, nil)
	s.wait(t, "reload complete", map[string]any{"generation": 2}, nil)
	for slot, pid := range s.pidsOf(t, 2) {
		if want := fmt.Sprintf("sluice worker --slot %d --generation 2", slot); cmdline(t, pid) != want {
			t.Errorf("new worker %d: cmdline %q, want %q", pid, cmdline(t, pid), want)
		}
	}
	waitGone(t, old)
	if code, body := get(t, addr, "/"); code != 200 || body != "ok" {
		t.Fatalf("after reload: %d %q", code, body)
	}
}

func TestReloadLetsInFlightRequestFinish(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, proxyConfig(up.addr, controlPath(t), "public"))
	addr := s.listenAddr(t, "public")
	s.workers(t)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	ka := dialKeepAlive(t, addr)
	go func() {
		code, body, err := ka.send("/slow")
		done <- result{code, body, err}
	}()
	select {
	case <-up.arrived:
	case <-time.After(waitTimeout):
		t.Fatal("slow request never reached the upstream")
	}
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	if n := s.count("generation drained", map[string]any{"generation": 1}); n != 0 {
		t.Fatal("generation 1 drained while a request was in flight")
	}
	close(up.release)
	select {
	case r := <-done:
		if r.err != nil || r.code != 200 || r.body != "slow ok" {
			t.Fatalf("in-flight request: %d %q %v, want 200 \"slow ok\"", r.code, r.body, r.err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("in-flight request did not complete")
	}
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
}

func TestInvalidReloadKeepsRunningGeneration(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	good := proxyConfig(up.addr, ctl, "public")
	s := start(t, good)
	addr := s.listenAddr(t, "public")
	pids := s.workers(t)
	// Line 3 holds an unknown key.
	s.rewrite(t, strings.Replace(good, "workers = 2\n", "workers = 2\nworkerz = 3\n", 1))
	out, code := runSluice(t, "reload", "-c", s.path)
	if code == 0 {
		t.Fatalf("sluice reload of an invalid config exited 0: %q", out)
	}
	if !strings.Contains(out, s.path+":3") || !strings.Contains(out, "server.workerz") {
		t.Errorf("sluice reload output lacks %s:3 and server.workerz: %q", s.path, out)
	}
	e := s.wait(t, "reload failed", nil, nil)
	if !strings.Contains(e.str("error"), "server.workerz") {
		t.Errorf("reload failed line %v does not name server.workerz", e)
	}
	if n := s.count("worker started", map[string]any{"generation": 2}); n != 0 {
		t.Errorf("%d workers of a new generation started for an invalid config", n)
	}
	for slot, pid := range pids {
		if !alive(pid) {
			t.Errorf("worker %d of slot %d is gone after a failed reload", pid, slot)
		}
	}
	if code, body := get(t, addr, "/"); code != 200 || body != "ok" {
		t.Fatalf("after failed reload: %d %q", code, body)
	}
	// The next valid reload works.
	s.rewrite(t, good)
	if out, code := runSluice(t, "reload", "--control", ctl); code != 0 || !strings.Contains(out, "generation 2 serving") {
		t.Fatalf("reload after a fix = %d, %q", code, out)
	}
}

func TestReloadAddsAndRemovesListeners(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	s := start(t, proxyConfig(up.addr, ctl, "public", "old"))
	public, oldAddr := s.listenAddr(t, "public"), s.listenAddr(t, "old")
	s.workers(t)
	s.rewrite(t, proxyConfig(up.addr, ctl, "public", "added"))
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	added := s.wait(t, "listening", map[string]any{"listener": "added", "generation": 2, "sockets": "bound"}, nil).str("address")
	if code, body := get(t, added, "/"); code != 200 || body != "ok" {
		t.Fatalf("new listener %s: %d %q", added, code, body)
	}
	if code, _ := get(t, public, "/"); code != 200 {
		t.Fatalf("kept listener %s: %d", public, code)
	}
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	if n := listeningSockets(t, portOf(t, oldAddr)); n != 0 {
		t.Errorf("%d sockets still listen on removed listener %s", n, oldAddr)
	}
	if c, err := net.DialTimeout("tcp", oldAddr, waitTimeout); err == nil {
		c.Close()
		t.Errorf("removed listener %s still accepts connections", oldAddr)
	}
}

// controlRequest writes one request line to the control socket and
// returns the connection, to read the answer later.
func controlRequest(t *testing.T, ctl, cmd string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("unix", ctl, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "{\"cmd\":%q}\n", cmd); err != nil {
		t.Fatal(err)
	}
	return c
}

// controlAnswer reads the answer line of a control request.
func controlAnswer(t *testing.T, c net.Conn) map[string]any {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	var r map[string]any
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		t.Fatalf("control answer: %v", err)
	}
	return r
}

func TestConcurrentReloadIsRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	s := start(t, proxyConfig(up.addr, ctl, "public"))
	s.workers(t)
	// With the supervisor stopped, both requests wait in the socket; once
	// it resumes, the second arrives while the first reload's workers are
	// still starting.
	sup := s.cmd.Process.Pid
	if err := syscall.Kill(sup, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	a, b := controlRequest(t, ctl, "reload"), controlRequest(t, ctl, "reload")
	if err := syscall.Kill(sup, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ra, rb := controlAnswer(t, a), controlAnswer(t, b)
	ok, refused := ra, rb
	if ra["ok"] != true {
		ok, refused = rb, ra
	}
	if ok["ok"] != true || ok["generation"] != float64(2) {
		t.Errorf("no request got {ok: true, generation: 2}: %v, %v", ra, rb)
	}
	if refused["ok"] != false || !strings.Contains(fmt.Sprint(refused["error"]), "reload already in progress") {
		t.Errorf("concurrent request answered %v, want a reload already in progress error", refused)
	}
	s.wait(t, "reload refused", nil, nil)
	if n := s.count("worker started", map[string]any{"generation": 3}); n != 0 {
		t.Errorf("a refused reload started %d workers", n)
	}
}

func TestCrashedWorkerRestartsInItsGenerationAndDrainingOneDoesNot(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, proxyConfig(up.addr, controlPath(t), "public"))
	addr := s.listenAddr(t, "public")
	old := s.workers(t)
	// A request in flight keeps one old worker draining.
	ka := dialKeepAlive(t, addr)
	go ka.send("/slow") // fails when its worker is killed
	select {
	case <-up.arrived:
	case <-time.After(waitTimeout):
		t.Fatal("slow request never reached the upstream")
	}
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	for _, pid := range old {
		syscall.Kill(pid, syscall.SIGKILL) // one may be gone already
	}
	// "generation drained" is only logged once no worker of generation 1
	// is left, so none was restarted.
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	if n := s.count("worker started", map[string]any{"generation": 1}); n != 2 {
		t.Errorf("%d workers of generation 1 started, want the first 2 only", n)
	}
	victim := s.pidsOf(t, 2)[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	notVictim := func(e entry) bool { return e.int(t, "pid") != victim }
	s.wait(t, "worker ready", map[string]any{"slot": 0, "generation": 2}, notVictim)
}

func TestReloadWithoutSupervisorFails(t *testing.T) {
	t.Parallel()
	ctl := controlPath(t)
	out, code := runSluice(t, "reload", "--control", ctl)
	if code == 0 || !strings.Contains(out, ctl) {
		t.Fatalf("sluice reload with nobody listening = %d, %q; want non-zero naming %s", code, out, ctl)
	}
}

// TestReloadStopsEveryOldWorkerAcceptingBeforeDrainingAny: the workers of
// a slot share its socket across generations, so a client that a drained
// worker sends away (GOAWAY, Connection: close) must not be accepted by
// another worker of the old generation: every old worker says it stopped
// accepting before any is told to drain.
func TestReloadStopsEveryOldWorkerAcceptingBeforeDrainingAny(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, proxyConfig(up.addr, controlPath(t), "public"))
	s.pidsOf(t, 1)
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	s.mu.Lock()
	lines := s.lines
	s.mu.Unlock()
	firstDrain, stopped := -1, map[string]int{}
	for i, e := range lines {
		if e.str("generation") != "1" {
			continue
		}
		switch e.str("msg") {
		case "stopped accepting":
			stopped[e.str("slot")] = i
		case "draining":
			if firstDrain < 0 {
				firstDrain = i
			}
		}
	}
	if len(stopped) != 2 || firstDrain < 0 {
		t.Fatalf("generation 1: stopped accepting in slots %v, first draining line %d; want both slots and a drain", stopped, firstDrain)
	}
	for slot, i := range stopped {
		if i > firstDrain {
			t.Errorf("generation 1 slot %s stopped accepting (log line %d) after a worker of it began to drain (line %d)", slot, i, firstDrain)
		}
	}
}

// TestReloadDrainsOldWorkersWhenOneDoesNotSayItStopped: a worker that
// cannot answer the request to stop accepting (stopped with SIGSTOP here)
// holds its siblings back a second at most; they drain without it, and it
// drains once it runs again.
func TestReloadDrainsOldWorkersWhenOneDoesNotSayItStopped(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	s := start(t, proxyConfig(up.addr, controlPath(t), "public"))
	old := s.pidsOf(t, 1)
	if err := syscall.Kill(old[1], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(old[1], syscall.SIGCONT)
		}
	}
	defer resume()
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	complete := s.wait(t, "reload complete", map[string]any{"generation": 2}, nil)
	s.wait(t, "stopped accepting", map[string]any{"generation": 1, "slot": 0}, nil)
	drained := s.wait(t, "draining", map[string]any{"generation": 1, "slot": 0}, nil)
	// Slot 0 waited for slot 1 until the bound (1 s from the retirement,
	// logged just before "reload complete"): a lower bound only, the
	// machine may be slow.
	if gap := logTime(t, drained).Sub(logTime(t, complete)); gap < 800*time.Millisecond {
		t.Errorf("slot 0 drained %v after the reload completed, want about a second (the wait for slot 1)", gap)
	}
	waitGone(t, map[int]int{0: old[0]})
	resume()
	s.wait(t, "draining", map[string]any{"generation": 1, "slot": 1}, nil)
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
}

// logTime is the time of a log line (zap's ISO 8601 "ts", milliseconds).
func logTime(t *testing.T, e entry) time.Time {
	t.Helper()
	ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.str("ts"))
	if err != nil {
		t.Fatalf("log line %v: ts: %v", e, err)
	}
	return ts
}
