package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// Operational cases: what someone running sluice at the edge of a service
// under systemd does to it over weeks (many reloads, bad starts, scraping
// the admin API), beyond a single lifecycle.

// statsMemfds counts the stats regions (memfds) process pid holds open.
func statsMemfds(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.Contains(l, "sluice-stats") {
			n++
		}
	}
	return n
}

// TestReloadsDoNotLeakStatsRegions reloads an unchanged config many times
// and checks that the supervisor holds no more stats regions afterwards
// than before: each reload validates the file by building a dry-run
// generation, which used to keep its own stats memfd (and mapping, and its
// clusters) for the life of the supervisor, one more per reload.
func TestReloadsDoNotLeakStatsRegions(t *testing.T) {
	p := gwtest.Start(t, simpleConfig(1, "127.0.0.1:1"))
	reloadOK(t, p, "first reload")
	before := statsMemfds(t, p.Pid())
	const reloads = 6
	for i := range reloads {
		reloadOK(t, p, fmt.Sprintf("reload %d", i+2))
	}
	// The replaced generations drain (no connections: at once) and give
	// their slabs back; what is left is the serving region.
	deadline := time.Now().Add(ioTimeout)
	n := statsMemfds(t, p.Pid())
	for n > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = statsMemfds(t, p.Pid())
	}
	if n > before {
		t.Fatalf("supervisor holds %d stats memfds after %d more reloads, %d before: a reload leaks one", n, reloads, before)
	}
}

// TestClusterMembershipIsNotMultipliedByWorkers checks that
// cluster.<name>.membership_total and membership_healthy count the
// cluster's hosts, as in Envoy, whatever the number of workers: every
// worker holds the whole cluster and sets the gauges in its own slab, and
// the supervisor used to add them up (3 workers, 2 hosts: 6).
func TestClusterMembershipIsNotMultipliedByWorkers(t *testing.T) {
	cfg := config(3, route(`prefix = "/"`, "up"), cluster("up", "127.0.0.1:1", "127.0.0.1:2")) +
		"\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	check := func(when string) {
		t.Helper()
		st := adminCounters(t, admin)
		for _, name := range []string{"cluster.up.membership_total", "cluster.up.membership_healthy"} {
			if got := st[name]; got != 2 {
				t.Errorf("%s: %s = %v, want 2 (the cluster's hosts)", when, name, got)
			}
		}
	}
	check("after start")
	reloadOK(t, p, "reload")
	check("after a reload")
}

// TestStartFailsWhenWorkersCannotStart gives sluice a config that passes
// validation but on which no worker can start (its access log's directory
// does not exist): sluice run exits 1 at once and says why (the worker's
// reason a JSON line like every other, not plain text), as Envoy and
// nginx do, instead of restarting the workers forever with the service
// never ready (under systemd, an activation hanging until TimeoutStartSec).
func TestStartFailsWhenWorkersCannotStart(t *testing.T) {
	dir := t.TempDir()
	cfg := withHCM(simpleConfig(2, "127.0.0.1:1"),
		"[[listener.filter_chain.filter.config.access_log]]",
		fmt.Sprintf("path = %q", dir+"/missing/access.log"))
	path := dir + "/sluice.toml"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := gwtest.Exec(t, 60*time.Second, "validate", "-c", path); code != 0 {
		t.Fatalf("validate: exit %d: %s", code, out)
	}
	// Before, the workers were restarted (with backoff) until Exec's
	// timeout killed sluice.
	code, out := gwtest.Exec(t, 30*time.Second, "run", "-c", path)
	if code != 1 {
		t.Fatalf("run: exit %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{`"msg":"start failed"`, "exited before it was ready", "missing/access.log"} {
		if !strings.Contains(out, want) {
			t.Errorf("run output lacks %q:\n%s", want, out)
		}
	}
	// Every line is JSON, the worker's reason too.
	workerSaid := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("output line is not JSON: %s", line)
			continue
		}
		if e["msg"] == "cannot start" && e["slot"] != nil && strings.Contains(fmt.Sprint(e["error"]), "missing/access.log") {
			workerSaid = true
		}
	}
	if !workerSaid {
		t.Errorf("no worker logged msg=\"cannot start\" with the access log error:\n%s", out)
	}
}

// TestReloadNamingAnotherFileIsRefused runs sluice reload -c with a valid
// config file other than the one sluice run was started with. The
// supervisor re-reads its own file, so it used to answer "generation N
// serving" for a file it never read; it now refuses, naming both files,
// and changes nothing. The same file by another path (a symlink) reloads.
func TestReloadNamingAnotherFileIsRefused(t *testing.T) {
	p := gwtest.Start(t, simpleConfig(1, "127.0.0.1:1"))
	other := t.TempDir() + "/other.toml"
	if err := os.WriteFile(other, []byte(simpleConfig(2, "127.0.0.1:2")), 0o600); err != nil {
		t.Fatal(err)
	}
	mark := p.Mark()
	for _, cmd := range []string{"reload", "upgrade"} {
		code, out := gwtest.Exec(t, 60*time.Second, cmd, "-c", other, "--control", controlSocket(p))
		if m := upgradedRE.FindStringSubmatch(out); m != nil {
			next, _ := strconv.Atoi(m[1]) // an upgrade that should not have been
			syscall.Kill(next, syscall.SIGKILL)
		}
		if code != 1 || !strings.Contains(out, "refused") || !strings.Contains(out, p.ConfigPath) || !strings.Contains(out, other) {
			t.Errorf("%s -c %s: exit %d, want 1 with a refusal naming both files; output: %s", cmd, other, code, out)
		}
	}
	for _, e := range p.Logs()[mark:] {
		if m := e.Msg(); m == "reloading" || m == "upgrading" {
			t.Fatalf("a refused request started %q", m)
		}
	}
	link := t.TempDir() + "/link.toml"
	if err := os.Symlink(p.ConfigPath, link); err != nil {
		t.Fatal(err)
	}
	if code, out := gwtest.Exec(t, 60*time.Second, "reload", "-c", link, "--control", controlSocket(p)); code != 0 {
		t.Fatalf("reload -c a symlink to the running file: exit %d: %s", code, out)
	}
}

// TestSecondRunOnTheSameControlSocketIsRefused starts sluice run a second
// time on the same ports and control socket while the first one serves
// (a manual run beside the systemd one, say). The second exits 1 before it
// binds anything; it used to bind the same ports beside the first
// (SO_REUSEPORT, so the kernel split new connections between two
// supervisors) and replace its control socket, so that sluice reload
// reached only the newcomer.
func TestSecondRunOnTheSameControlSocketIsRefused(t *testing.T) {
	p := gwtest.Start(t, simpleConfig(1, "127.0.0.1:1"))
	second := strings.Replace(simpleConfig(1, "127.0.0.1:1"), `address = "127.0.0.1:0"`,
		fmt.Sprintf("address = %q", p.Addr("http")), 1)
	second = strings.Replace(second, "[server]\n", fmt.Sprintf("[server]\ncontrol_socket = %q\n", controlSocket(p)), 1)
	path := t.TempDir() + "/second.toml"
	if err := os.WriteFile(path, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	// Before, the second one served until Exec's timeout killed it.
	code, out := gwtest.Exec(t, 20*time.Second, "run", "-c", path)
	if code != 1 || !strings.Contains(out, "another sluice is running") {
		t.Fatalf("second run: exit %d, want 1 naming the running one; output:\n%s", code, out)
	}
	if strings.Contains(out, `"msg":"listening"`) {
		t.Errorf("the second run bound its listeners before giving up:\n%s", out)
	}
	reloadOK(t, p, "reload of the first after the second gave up")
}

// TestReloadAppliesLogLevelToTheSupervisor reloads a config whose
// log.level changed: the supervisor's own logger takes it, as the new
// workers do (it used to keep the level it was started with).
func TestReloadAppliesLogLevelToTheSupervisor(t *testing.T) {
	cfg := simpleConfig(1, "127.0.0.1:1") + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg+"\n[log]\nlevel = \"info\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	if err := os.WriteFile(p.ConfigPath, []byte(cfg+"\n[log]\nlevel = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloadOK(t, p, "reload with log.level warn")
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + admin + "/logging")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"supervisor: warn", "worker: warn"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/logging after the reload lacks %q:\n%s", want, body)
		}
	}
	// And the supervisor logs accordingly: a second reload's info lines
	// are gone.
	mark := p.Mark()
	reloadOK(t, p, "second reload")
	for _, e := range p.Logs()[mark:] {
		if e.Msg() == "reload complete" {
			t.Fatalf("supervisor logged %q at info with log.level warn", e.Msg())
		}
	}
}

// TestConfigDumpDoesNotCarryTheFileItself checks that /config_dump, which
// redacts the values of secret-named keys, does not also return the config
// file's bytes: it used to, base64-encoded under "Source", with every
// redacted secret in clear.
func TestConfigDumpDoesNotCarryTheFileItself(t *testing.T) {
	dir := t.TempDir()
	bin := dir + "/apikey"
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sluice-proxy/sluice/plugins/apikey").CombinedOutput(); err != nil {
		t.Fatalf("build apikey: %v\n%s", err, out)
	}
	keys := dir + "/keys.txt"
	if err := os.WriteFile(keys, []byte("k1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "hunter2-do-not-show"
	cfg := simpleConfig(1, "127.0.0.1:1") + "\n[admin]\naddress = \"127.0.0.1:0\"\n" +
		fmt.Sprintf("\n[[plugin]]\nname = \"apikey\"\npath = %q\nargs = [\"-keys\", %q]\nenv = { DB_PASSWORD = %q }\n", bin, keys, secret)
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"DB_PASSWORD": "[redacted]"`) {
		t.Fatalf("/config_dump = %d, want 200 with the env value redacted:\n%s", resp.StatusCode, body)
	}
	// Every string of the dump, as it is and base64-decoded.
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/config_dump: %v", err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			dec, _ := base64.StdEncoding.DecodeString(v)
			if strings.Contains(v, secret) || strings.Contains(string(dec), secret) {
				t.Errorf("/config_dump carries the secret in %.60q…", v)
			}
		}
	}
	walk(doc)
}

// TestClosedLogPipeDoesNotKillSluice runs sluice with its stderr (the log)
// on a pipe whose reader goes away, as when a log collector sluice was
// piped into exits: the next log lines must fail quietly. The Go runtime
// turns a write to a broken stderr pipe into a fatal SIGPIPE, so the
// supervisor (and its workers with it) used to die at its next log line,
// a full outage.
func TestClosedLogPipeDoesNotKillSluice(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	dir := t.TempDir()
	ctl := filepath.Join(shortDir(t), "control.sock")
	cfg := strings.Replace(simpleConfig(2, up.Addr), "[server]\n", fmt.Sprintf("[server]\ncontrol_socket = %q\n", ctl), 1)
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gwtest.Binary(t), "run", "-c", path)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Read the log until sluice is ready, noting the listener's address,
	// then stop reading it for good.
	lines := make(chan map[string]any)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	addr := ""
	deadline := time.After(15 * time.Second)
	for ready := false; !ready; {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatal("sluice's log ended before it was ready")
			}
			if e["msg"] == "listening" {
				addr, _ = e["address"].(string)
			}
			ready = e["msg"] == "ready"
		case <-deadline:
			t.Fatal("sluice not ready within 15s")
		}
	}
	r.Close()
	go func() {
		for range lines { // the reader goroutine ends on the closed pipe
		}
	}()

	// A reload makes the supervisor and the new workers log.
	if code, out := gwtest.Exec(t, 60*time.Second, "reload", "--control", ctl); code != 0 {
		t.Fatalf("reload after the log pipe closed: exit %d: %s", code, out)
	}
	select {
	case <-exited:
		t.Fatalf("sluice exited after its log pipe closed: %v", cmd.ProcessState)
	default:
	}
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("request after the log pipe closed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("request after the log pipe closed: %d %q", resp.StatusCode, body)
	}
}

// shortDir is a temporary directory with a short path, for unix sockets
// (at most 107 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestSIGHUPDuringAReloadIsNotLost sends a SIGHUP while a reload is in
// progress, after the file changed again: that edit is applied once the
// reload in progress is over. A signal has nobody to tell "retry", and
// the SIGHUP used to be refused ("reload already in progress"), leaving
// the last edit unapplied until some later reload.
func TestSIGHUPDuringAReloadIsNotLost(t *testing.T) {
	// The first reload starts a plugin that never launches, which holds
	// it up to 10 s after it has read the file.
	plug := t.TempDir() + "/never-a-plugin"
	if err := os.WriteFile(plug, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plugin := fmt.Sprintf("\n[[plugin]]\nname = \"slow\"\npath = %q\n", plug)
	version := func(v string) string {
		return config(2, fmt.Sprintf("\n    [[route_config.virtual_host.route]]\n    match = { path = \"/v\" }\n    direct_response = { status = 200, body = %q }\n", v))
	}
	p := gwtest.Start(t, version("v1"))
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(p.ConfigPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mark := p.Mark()
	write(version("v2") + plugin)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The plugin's first launch failed: the reload has read v2 and waits.
	p.WaitLogSince(t, mark, "plugin: launch failed", nil, ioTimeout)
	write(version("v3") + plugin)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: ioTimeout}
	got := ""
	for deadline := time.Now().Add(30 * time.Second); got != "v3" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // polling the serving generation, which has no wait
		resp, err := c.Get("http://" + p.Addr("http") + "/v")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = string(b)
	}
	if got != "v3" {
		t.Fatalf("serving %q 30 s after the second SIGHUP, want v3", got)
	}
}

// A SIGUSR2 that comes while a reload runs is queued, as a SIGHUP is: the
// upgrade starts once the reload is over, instead of being refused with
// no one to tell.
func TestSIGUSR2DuringAReloadIsNotLost(t *testing.T) {
	p, mark := reloadHeldByAPlugin(t)
	if err := p.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	p.WaitLogSince(t, mark, "upgrade queued", nil, 30*time.Second)
	done := p.WaitLogSince(t, mark, "upgrade complete", nil, 60*time.Second)
	if pid, ok := done["new_pid"].(float64); ok && pid > 0 {
		t.Cleanup(func() { syscall.Kill(int(pid), syscall.SIGKILL) })
	}
	for _, e := range p.Logs()[mark:] {
		if e["msg"] == "upgrade refused" {
			t.Fatalf("the SIGUSR2 was refused: %v", e)
		}
	}
}

// While a reload waits for a new plugin's first launch (up to 10 s), the
// supervisor keeps answering: a second reload is refused at once as one is
// in progress, not after the wait.
func TestControlAnswersWhileAReloadWaitsForAPlugin(t *testing.T) {
	p, mark := reloadHeldByAPlugin(t)
	code, out := reload(t, p)
	if code == 0 || !strings.Contains(out, "reload already in progress") {
		t.Fatalf("second reload: exit %d: %s; want it refused as one is in progress", code, out)
	}
	for _, e := range p.Logs()[mark:] {
		if e["msg"] == "plugin not started yet; workers attach once it is" {
			t.Fatal("the second reload was answered only once the first had stopped waiting for its plugin")
		}
	}
}

// reloadHeldByAPlugin starts sluice and a reload (SIGHUP) that adds a
// plugin which never launches, which holds the reload up to 10 s after it
// has read the file; it returns once the plugin's first launch failed,
// with the log mark from before the reload.
func reloadHeldByAPlugin(t *testing.T) (*gwtest.Proxy, int) {
	t.Helper()
	plug := t.TempDir() + "/never-a-plugin"
	if err := os.WriteFile(plug, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cluster("up", testutil.DeadAddr(t))))
	mark := p.Mark()
	text, err := os.ReadFile(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.ConfigPath, append(text, fmt.Sprintf("\n[[plugin]]\nname = \"slow\"\npath = %q\n", plug)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLogSince(t, mark, "plugin: launch failed", nil, ioTimeout)
	return p, mark
}

// TestHandedOffConnectionCountsOnce keeps one keep-alive connection open
// across three reloads, each of which hands it to the next generation: the
// listener's and the connection manager's downstream_cx_total count it
// once (not once per generation that served it), downstream_cx_destroy
// counts it when it closes, and downstream_cx_length_ms gets one value.
func TestHandedOffConnectionCountsOnce(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	p := gwtest.Start(t, simpleConfig(1, up.Addr)+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	addr := p.Addr("http")
	const lst = "listener.127.0.0.1_0." // named after the configured address
	var dials atomic.Int64
	c := newClient(&dials)
	for i := range 4 {
		if i > 0 {
			reloadOK(t, p, fmt.Sprintf("reload %d", i))
		}
		if resp, body := get(t, c, "http://"+addr+"/"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// want waits until each stat of both scopes has its value.
	want := func(when string, total, destroy, active float64) {
		t.Helper()
		var st map[string]float64
		for deadline := time.Now().Add(ioTimeout); ; {
			st = adminCounters(t, admin)
			ok := true
			for _, scope := range []string{lst, "http.ingress_http."} {
				ok = ok && st[scope+"downstream_cx_total"] == total && st[scope+"downstream_cx_destroy"] == destroy &&
					st[scope+"downstream_cx_active"] == active
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // polling the admin API, which has no wait
		}
		for _, scope := range []string{lst, "http.ingress_http."} {
			t.Errorf("%s: %sdownstream_cx_total %v, _destroy %v, _active %v; want %v, %v, %v", when, scope,
				st[scope+"downstream_cx_total"], st[scope+"downstream_cx_destroy"], st[scope+"downstream_cx_active"], total, destroy, active)
		}
		t.FailNow()
	}
	// The client normally keeps its one connection; should one close in a
	// reload anyway, the counts follow its dials.
	n := float64(dials.Load())
	want("open", n, n-1, 1)
	c.CloseIdleConnections()
	want("closed", n, n, 0)
	if got := histogramCount(t, admin, lst+"downstream_cx_length_ms"); float64(got) != n {
		t.Errorf("%sdownstream_cx_length_ms has %d values, want %v (one per connection)", lst, got, n)
	}
}

// TestPortInUseSaysHowToFindTheHolder starts sluice on a port another
// process listens on (without SO_REUSEPORT, so the bind fails): sluice
// exits 1 naming the listener and address and telling how to find who
// holds it and what to change.
func TestPortInUseSaysHowToFindTheHolder(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	addr := holder.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	cfg := strings.Replace(simpleConfig(1, "127.0.0.1:1"), `address = "127.0.0.1:0"`, fmt.Sprintf("address = %q", addr), 1)
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := gwtest.Exec(t, 20*time.Second, "run", "-c", path)
	if code != 1 {
		t.Fatalf("sluice run on a port in use: exit %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{`listener \"http\"`, "listen " + addr, "address already in use", "ss -ltnp 'sport = :" + port + "'", "change the listener's address"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestConfigDumpUsesTheConfigFilesKeys reads /config_dump and finds the
// running config under the keys of the TOML file (it used to carry Go
// field names: "Listeners", "FilterChains", "Decoded", "ConnectTimeout"),
// with each filter as its name and its decoded config, and defaults
// applied.
func TestConfigDumpUsesTheConfigFilesKeys(t *testing.T) {
	p := gwtest.Start(t, simpleConfig(1, "127.0.0.1:1")+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc struct {
		Listener []struct {
			Name        string `json:"name"`
			FilterChain []struct {
				Filter []struct {
					Name   string `json:"name"`
					Config struct {
						StatPrefix string `json:"stat_prefix"`
						HTTPFilter []struct {
							Name string `json:"name"`
						} `json:"http_filter"`
					} `json:"config"`
				} `json:"filter"`
			} `json:"filter_chain"`
		} `json:"listener"`
		Cluster []struct {
			Name           string `json:"name"`
			ConnectTimeout string `json:"connect_timeout"`
			LBPolicy       string `json:"lb_policy"`
		} `json:"cluster"`
		Server struct {
			DrainTimeout string `json:"drain_timeout"`
		} `json:"server"`
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/config_dump = %d:\n%s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/config_dump: %v\n%s", err, body)
	}
	if len(doc.Listener) != 1 || doc.Listener[0].Name != "http" || len(doc.Listener[0].FilterChain) != 1 ||
		len(doc.Listener[0].FilterChain[0].Filter) != 1 {
		t.Fatalf("/config_dump has no listener.filter_chain.filter as in the file:\n%s", body)
	}
	f := doc.Listener[0].FilterChain[0].Filter[0]
	if f.Name != "sluice.filters.network.http_connection_manager" || f.Config.StatPrefix != "ingress_http" ||
		len(f.Config.HTTPFilter) != 1 || f.Config.HTTPFilter[0].Name != "sluice.filters.http.router" {
		t.Errorf("filter = %+v, want the connection manager with its config under config:\n%s", f, body)
	}
	if len(doc.Cluster) != 1 || doc.Cluster[0].Name != "up" || doc.Cluster[0].ConnectTimeout != "1s" || doc.Cluster[0].LBPolicy != "round_robin" {
		t.Errorf("cluster = %+v, want up with connect_timeout 1s and the default lb_policy:\n%s", doc.Cluster, body)
	}
	if doc.Server.DrainTimeout != "10s" {
		t.Errorf("server.drain_timeout = %q, want 10s", doc.Server.DrainTimeout)
	}
	for _, goName := range []string{`"Listeners"`, `"FilterChains"`, `"Decoded"`, `"ConnectTimeout"`} {
		if strings.Contains(string(body), goName) {
			t.Errorf("/config_dump still has the Go field name %s", goName)
		}
	}
}

// TestReloadWhoseWorkersCannotStartSaysWhy reloads a config that validates
// but on which no worker can start (an access log in a missing directory):
// sluice reload exits 1 with the worker's own reason, file, line and key
// included (it used to say only "worker slot N exited before it was ready
// (exit status 1)", the reason being in the log alone), and the running
// generation serves on.
func TestReloadWhoseWorkersCannotStartSaysWhy(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	dir := t.TempDir()
	bad := withHCM(simpleConfig(1, up.Addr),
		"[[listener.filter_chain.filter.config.access_log]]",
		fmt.Sprintf("path = %q", dir+"/missing/access.log"))
	if err := os.WriteFile(p.ConfigPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := reload(t, p)
	if code != 1 {
		t.Fatalf("reload: exit %d, want 1; output: %s", code, out)
	}
	for _, want := range []string{"exited before it was ready", p.ConfigPath + ":", "access_log[0].path", "missing/access.log: no such file or directory"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output lacks %q: %s", want, out)
		}
	}
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + p.Addr("http") + "/")
	if err != nil {
		t.Fatalf("the running generation stopped serving: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the failed reload: status %d, want 200", resp.StatusCode)
	}
}
