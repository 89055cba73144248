package supervisor_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// authGet sends GET / with the API key key (none if empty) on a new
// connection and returns the status, or 0 if the exchange failed.
func authGet(addr, key string) int {
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return 0
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	hdr := ""
	if key != "" {
		hdr = "x-api-key: " + key + "\r\n"
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: sluice.test\r\n%sConnection: close\r\n\r\n", hdr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestPluginIsSupervisedRestartedAndKeptByReload(t *testing.T) {
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
	s := start(t, text)
	addr := s.listenAddr(t, "public")
	pluginPID := s.wait(t, "plugin: running", map[string]any{"plugin": "apikey"}, nil).int(t, "pid")
	s.workers(t)
	if code := authGet(addr, "s3cret"); code != 200 {
		t.Fatalf("GET with the key = %d, want 200", code)
	}
	if code := authGet(addr, "wrong"); code != 401 {
		t.Fatalf("GET with a wrong key = %d, want 401", code)
	}

	// kill -9 of the plugin under load: the requests meanwhile get the
	// failure mode (fail closed: 403), never anything else, and 200s
	// resume once the supervisor has restarted it.
	var (
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		ok    atomic.Int64
		other sync.Map // unexpected statuses
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
				default:
					other.Store(code, true)
				}
			}
		}()
	}
	if err := syscall.Kill(pluginPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	restarted := s.wait(t, "plugin: running", map[string]any{"plugin": "apikey"}, func(e entry) bool { return e.int(t, "pid") != pluginPID }).int(t, "pid")
	deadline := time.Now().Add(waitTimeout)
	for n := ok.Load(); ok.Load() < n+50; {
		if time.Now().After(deadline) {
			t.Fatal("200s did not resume after the plugin restart")
		}
		time.Sleep(time.Millisecond) // polling the clients' progress
	}
	close(stop)
	wg.Wait()
	other.Range(func(k, _ any) bool {
		t.Errorf("a request got status %v while the plugin restarted; want only 200 or the failure mode 403", k)
		return true
	})
	for slot, pid := range s.workers(t) {
		if !alive(pid) {
			t.Errorf("worker %d (pid %d) died with the plugin", slot, pid)
		}
	}

	// A reload with an unchanged [[plugin]] keeps its process.
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	if code := authGet(addr, "s3cret"); code != 200 {
		t.Fatalf("GET after the reload = %d, want 200", code)
	}
	if !alive(restarted) || s.count("plugin: running", map[string]any{"plugin": "apikey"}) != 2 {
		t.Errorf("the reload replaced the plugin process %d (alive %v, %d launches)", restarted, alive(restarted),
			s.count("plugin: running", map[string]any{"plugin": "apikey"}))
	}
}
