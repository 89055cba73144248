package extauthz_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
)

func TestAllowAppliesHeaderMutationsSeenByUpstream(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "echo")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q", name))
	r := do(t, "GET", url+"/a?b=c", "", "x-remove-me", "1", "x-keep", "2")
	if r.status != 200 {
		t.Fatalf("status %d body %q", r.status, r.body)
	}
	if got := r.header.Get("x-up-x-auth-user"); got != "tester" {
		t.Fatalf("upstream x-auth-user = %q, want tester", got)
	}
	if got := r.header.Get("x-up-x-seen"); !strings.HasPrefix(got, "GET /a?b=c 127.0.0.1:") || !strings.HasSuffix(got, " 127.0.0.1") {
		t.Fatalf("plugin saw %q, want method, path, host and source address", got)
	}
	if r.header.Get("x-up-x-remove-me") != "" || r.header.Get("x-up-x-keep") != "2" {
		t.Fatalf("headers_to_remove not applied exactly: %v", r.header)
	}
	if r.header.Get("x-auth-checked") != "yes" {
		t.Fatal("response_headers_to_add missing from the response")
	}
}

func TestDenyAnswersWithPluginStatusBodyAndHeaders(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "echo")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q", name))
	r := do(t, "POST", url+"/", "payload", "x-deny", "451")
	if r.status != 451 || r.body != "denied by plugin\n" || r.header.Get("x-deny-reason") != "test" {
		t.Fatalf("status %d body %q headers %v", r.status, r.body, r.header)
	}
	if up.RequestCount() != 0 {
		t.Fatal("a denied request reached the upstream")
	}
}

func TestBodyIsSentToPluginAndStillReachesUpstream(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "echo")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\nwith_request_body = { max_request_bytes = 64 }", name))
	r := do(t, "POST", url+"/", "hello plugin")
	if r.status != 200 || r.header.Get("x-up-x-body") != "hello plugin" || r.body != "hello plugin" {
		t.Fatalf("status %d, plugin saw body %q, upstream got %q", r.status, r.header.Get("x-up-x-body"), r.body)
	}
	if r.header.Get("x-up-x-partial") != "false" {
		t.Fatal("a whole body was marked partial")
	}
}

func TestBodyOverLimitGets413(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "echo")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\nwith_request_body = { max_request_bytes = 8 }", name))
	if r := do(t, "POST", url+"/", "more than eight bytes"); r.status != 413 {
		t.Fatalf("status %d, want 413", r.status)
	}
	if up.RequestCount() != 0 {
		t.Fatal("an oversized request reached the upstream")
	}
}

func TestPartialBodyIsSentMarkedPartial(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "echo")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\nwith_request_body = { max_request_bytes = 8, allow_partial_message = true }", name))
	r := do(t, "POST", url+"/", "more than eight bytes")
	if r.status != 200 || r.header.Get("x-up-x-body") != "more tha" || r.header.Get("x-up-x-partial") != "true" {
		t.Fatalf("status %d, plugin saw %q partial %q", r.status, r.header.Get("x-up-x-body"), r.header.Get("x-up-x-partial"))
	}
	if r.body != "more than eight bytes" {
		t.Fatalf("upstream got body %q, want all of it", r.body)
	}
}

func TestHangingPluginTimesOut(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "hang")
	t.Run("fail closed", func(t *testing.T) {
		url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\ntimeout = \"100ms\"", name))
		if r := do(t, "GET", url+"/", ""); r.status != 403 {
			t.Fatalf("status %d, want 403", r.status)
		}
	})
	t.Run("status_on_error", func(t *testing.T) {
		url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\ntimeout = \"50ms\"\nstatus_on_error = 503", name))
		if r := do(t, "GET", url+"/", ""); r.status != 503 {
			t.Fatalf("status %d, want 503", r.status)
		}
	})
	t.Run("fail open", func(t *testing.T) {
		url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\ntimeout = \"50ms\"\nfailure_mode_allow = true", name))
		r := do(t, "GET", url+"/", "")
		if r.status != 200 || r.header.Get("x-up-x-envoy-auth-failure-mode-allowed") != "true" {
			t.Fatalf("status %d, failure-mode header %q", r.status, r.header.Get("x-up-x-envoy-auth-failure-mode-allowed"))
		}
	})
	if up.RequestCount() != 1 {
		t.Fatalf("upstream saw %d requests, want only the fail-open one", up.RequestCount())
	}
}

func TestSlowPluginWithinTimeoutAllows(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "slow", "-delay", "30ms")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\ntimeout = \"5s\"", name))
	if r := do(t, "GET", url+"/", ""); r.status != 200 || r.header.Get("x-up-x-slow") != "done" {
		t.Fatalf("status %d x-slow %q", r.status, r.header.Get("x-up-x-slow"))
	}
}

func TestGarbageAnswersGetTheFailureMode(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "garbage")
	closed := proxy(t, up.Addr, fmt.Sprintf("plugin = %q", name))
	open := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\nfailure_mode_allow = true", name))
	for _, path := range []string{"/crlf", "/status", "/empty", "/name"} {
		if r := do(t, "GET", closed+path, ""); r.status != 403 {
			t.Errorf("%s fail closed: status %d, want 403", path, r.status)
		}
		r := do(t, "GET", open+path, "")
		if r.status != 200 || r.header.Get("x-up-x-injected") != "" || r.header.Get("x-up-set-cookie") != "" {
			t.Errorf("%s fail open: status %d, headers %v", path, r.status, r.header)
		}
	}
	if r := do(t, "GET", closed+"/fine", ""); r.status != 200 {
		t.Fatalf("valid answer after garbage: status %d", r.status)
	}
}

func TestRouteCanDisableTheFilter(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "hang")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\ntimeout = \"50ms\"", name))
	if r := do(t, "GET", url+"/open/x", ""); r.status != 200 {
		t.Fatalf("disabled route: status %d, want 200 without asking the plugin", r.status)
	}
	if r := do(t, "GET", url+"/closed", ""); r.status != 403 {
		t.Fatalf("enabled route: status %d, want 403", r.status)
	}
}

func TestCrashedPluginCostsItsRequestsThenRecovers(t *testing.T) {
	up := echoUpstream(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := plugin.Config{
		Name: fmt.Sprintf("crash-%d", pluginSeq.Add(1)),
		Path: plugintest.Build(t, testplugins+"crash"),
		Env:  map[string]string{"SLUICE_TEST_FIFO": fifo},
	}
	ras := plugintest.Supervise(t, cfg)
	first := <-ras
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q\ntimeout = \"10s\"", cfg.Name))
	if r := do(t, "GET", url+"/", ""); r.status != 200 || r.header.Get("x-up-x-plugin-pid") != fmt.Sprint(first.Pid) {
		t.Fatalf("before the crash: status %d pid %q", r.status, r.header.Get("x-up-x-plugin-pid"))
	}

	// kill -9 while a check is pending: that request gets the failure mode.
	pending := make(chan result, 1)
	go func() { pending <- do(t, "GET", url+"/block", "") }()
	f, err := os.Open(fifo) // returns once the plugin opened it for writing
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(f).ReadString('\n')
	f.Close()
	if line != "pending\n" {
		t.Fatalf("plugin said %q", line)
	}
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := <-pending; r.status != 403 {
		t.Fatalf("request pending during the crash: status %d, want 403", r.status)
	}
	second := <-ras
	if r := do(t, "GET", url+"/", ""); r.status != 200 || r.header.Get("x-up-x-plugin-pid") != fmt.Sprint(second.Pid) {
		t.Fatalf("after the restart: status %d pid %q, want 200 from pid %d", r.status, r.header.Get("x-up-x-plugin-pid"), second.Pid)
	}

	// A plugin that exits by itself mid-check: the same.
	if r := do(t, "GET", url+"/exit", ""); r.status != 403 {
		t.Fatalf("request that crashed the plugin: status %d, want 403", r.status)
	}
	third := <-ras
	if r := do(t, "GET", url+"/", ""); r.status != 200 || r.header.Get("x-up-x-plugin-pid") != fmt.Sprint(third.Pid) {
		t.Fatalf("after the second restart: status %d", r.status)
	}
}

// TestClientCannotForgeTheFailureModeHeader sends a request carrying its
// own x-envoy-auth-failure-mode-allowed through a check that passes: the
// upstream must not see it, since only a failed check let through adds it.
func TestClientCannotForgeTheFailureModeHeader(t *testing.T) {
	up := echoUpstream(t)
	name, _ := launch(t, "echo")
	url := proxy(t, up.Addr, fmt.Sprintf("plugin = %q", name))
	r := do(t, "GET", url+"/", "", "X-Envoy-Auth-Failure-Mode-Allowed", "true")
	if r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	if got := r.header.Get("x-up-x-envoy-auth-failure-mode-allowed"); got != "" {
		t.Fatalf("the upstream saw the client's x-envoy-auth-failure-mode-allowed %q", got)
	}
}
