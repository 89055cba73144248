package supervisor_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPluginsSurviveUpgradeWithinTheFailureMode upgrades the binary while
// clients send requests that an auth plugin checks: the new supervisor runs
// its own plugin process, requests get only 200 or the configured failure
// mode (fail closed: 403) meanwhile, and checks keep working afterwards.
func TestPluginsSurviveUpgradeWithinTheFailureMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "apikey")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sluice-proxy/sluice/plugins/apikey").CombinedOutput(); err != nil {
		t.Fatalf("build apikey: %v\n%s", err, out)
	}
	keys := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keys, []byte("s3cret demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	ctl := controlPath(t)
	text := obsConfig(up.addr, ctl, obsOptions{
		plugins: fmt.Sprintf("\n[[plugin]]\nname = \"apikey\"\npath = %q\nargs = [\"-keys\", %q]\n", bin, keys),
		filters: `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.ext_authz"
      [listener.filter_chain.filter.config.http_filter.config]
      plugin = "apikey"
`,
	})
	s := startAt(t, installBinary(t), text)
	addr := s.listenAddr(t, "public")
	oldPlugin := s.wait(t, "plugin: running", map[string]any{"plugin": "apikey"}, nil).int(t, "pid")
	s.workers(t)
	if code := authGet(addr, "s3cret"); code != 200 {
		t.Fatalf("GET with the key = %d, want 200", code)
	}

	var (
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		ok, fails atomic.Int64
		other     sync.Map
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch code := authGet(addr, "s3cret"); code {
				case 200:
					ok.Add(1)
				case 403:
					fails.Add(1)
				default:
					other.Store(code, true)
				}
			}
		}()
	}
	_, code, newPID := upgrade(t, ctl)
	if code != 0 {
		t.Fatalf("upgrade failed (exit %d)", code)
	}
	s.wait(t, "plugin: running", map[string]any{"plugin": "apikey"}, func(e entry) bool { return e.int(t, "pid") != oldPlugin })
	waitPIDGone(t, s.cmd.Process.Pid)
	deadline := time.Now().Add(waitTimeout)
	for n := ok.Load(); ok.Load() < n+50; {
		if time.Now().After(deadline) {
			t.Fatal("checked requests did not succeed after the upgrade")
		}
		time.Sleep(time.Millisecond) // polling the clients' progress
	}
	close(stop)
	wg.Wait()
	other.Range(func(k, _ any) bool {
		t.Errorf("a request got status %v across the upgrade; want only 200 or the failure mode 403", k)
		return true
	})
	if alive(oldPlugin) {
		t.Errorf("the old supervisor's plugin %d outlived it", oldPlugin)
	}
	if code := authGet(addr, "wrong"); code != 401 {
		t.Errorf("after the upgrade a wrong key got %d, want 401 from the new supervisor's plugin", code)
	}
	t.Logf("across the upgrade (new supervisor %d): %d allowed, %d in the failure mode", newPID, ok.Load(), fails.Load())
}
