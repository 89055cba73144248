package plugin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

const testplugins = "github.com/sluice-proxy/sluice/plugins/internal/testplugins/"

func checkPath(t *testing.T, a authapi.Authorizer, path string) (*authapi.CheckResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.Check(ctx, &authapi.CheckRequest{Http: &authapi.HTTPRequest{Method: "GET", Path: path}})
}

func TestLaunchedPluginAnswersThroughDialledReattach(t *testing.T) {
	path := plugintest.Build(t, testplugins+"crash")
	p, err := plugin.Launch(plugin.Config{Name: "crash", Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	// The reattach info travels as JSON from the supervisor to workers.
	b, err := json.Marshal(p.Reattach())
	if err != nil {
		t.Fatal(err)
	}
	var ra plugin.Reattach
	if err := json.Unmarshal(b, &ra); err != nil {
		t.Fatal(err)
	}
	if ra != p.Reattach() || ra.Pid != p.Pid() || ra.Network != "unix" {
		t.Fatalf("reattach after JSON = %+v, want %+v", ra, p.Reattach())
	}
	a, err := plugin.Dial(ra)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := checkPath(t, a, "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetOk().GetHeaders()[0].GetHeader().GetValue(); got != itoa(p.Pid()) {
		t.Fatalf("x-plugin-pid = %q, want %d", got, p.Pid())
	}
}

func TestClosingAnAttachmentLeavesThePluginRunning(t *testing.T) {
	path := plugintest.Build(t, testplugins+"crash")
	p, err := plugin.Launch(plugin.Config{Name: "crash", Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	for i := range 3 {
		a, err := plugin.Dial(p.Reattach())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if _, err := checkPath(t, a, "/"); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		a.Close()
	}
	select {
	case <-p.Done():
		t.Fatal("closing an attachment stopped the plugin")
	default:
	}
	if err := syscall.Kill(p.Pid(), 0); err != nil {
		t.Fatalf("plugin process gone: %v", err)
	}
}

func TestChecksumMismatchRefusesLaunch(t *testing.T) {
	path := plugintest.Build(t, testplugins+"crash")
	_, err := plugin.Launch(plugin.Config{Name: "crash", Path: path, SHA256: strings.Repeat("ab", 32)}, nil)
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("launch with a wrong sha256: err = %v, want a checksum error", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	p, err := plugin.Launch(plugin.Config{Name: "crash", Path: path, SHA256: hex.EncodeToString(sum[:])}, nil)
	if err != nil {
		t.Fatalf("launch with the right sha256: %v", err)
	}
	p.Kill()
}

func TestSuperviseRestartsAKilledPluginAndTheRegistryFollows(t *testing.T) {
	cfg := plugin.Config{Name: "supervised", Path: plugintest.Build(t, testplugins+"crash")}
	ras := plugintest.Supervise(t, cfg)
	first := <-ras
	a := plugin.Default.Authorizer(cfg.Name)
	if _, err := checkPath(t, a, "/"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := <-ras
	if second.Pid == first.Pid || second.Addr == first.Addr {
		t.Fatalf("restarted plugin has the same identity: %+v", second)
	}
	resp, err := checkPath(t, a, "/")
	if err != nil {
		t.Fatalf("check after restart: %v", err)
	}
	if got := resp.GetOk().GetHeaders()[0].GetHeader().GetValue(); got != itoa(second.Pid) {
		t.Fatalf("answered by pid %s, want the new process %d", got, second.Pid)
	}
}

func TestCrashMidCheckIsUnavailable(t *testing.T) {
	cfg := plugin.Config{Name: "crashing", Path: plugintest.Build(t, testplugins+"crash")}
	ras := plugintest.Supervise(t, cfg)
	<-ras
	a := plugin.Default.Authorizer(cfg.Name)
	_, err := checkPath(t, a, "/exit")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("check that crashes the plugin: err = %v, want Unavailable", err)
	}
	<-ras // restarted
	if _, err := checkPath(t, a, "/"); err != nil {
		t.Fatalf("check after restart: %v", err)
	}
}

func TestRegistryAuthorizerIsUnavailableUntilSet(t *testing.T) {
	r := plugin.NewRegistry()
	_, err := checkPath(t, r.Authorizer("nope"), "/")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if _, ok := r.Get("nope"); ok {
		t.Fatal("Get found a plugin never Set")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  plugin.Config
		err  string
	}{
		{"ok", plugin.Config{Name: "apikey", Path: "/bin/true", SHA256: strings.Repeat("0f", 32)}, ""},
		{"bad name", plugin.Config{Name: "Api Key", Path: "/bin/true"}, "name"},
		{"relative path", plugin.Config{Name: "a", Path: "bin/a"}, "absolute"},
		{"no path", plugin.Config{Name: "a"}, "path: required"},
		{"short sha", plugin.Config{Name: "a", Path: "/a", SHA256: "abcd"}, "sha256"},
		{"bad env", plugin.Config{Name: "a", Path: "/a", Env: map[string]string{"A=B": "c"}}, "env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
