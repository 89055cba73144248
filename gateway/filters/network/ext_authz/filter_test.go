package extauthz_test

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// proxy serves a generation whose filter chain runs the network ext_authz
// filter (with the given config lines) before the HTTP connection manager.
func proxy(t *testing.T, upstream, authzConfig string) string {
	t.Helper()
	text := fmt.Sprintf(`
[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.ext_authz"
[listener.filter_chain.filter.config]
%s
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "t"
route_config = "r"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"

[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/" }
cluster = "up"

[[cluster]]
name = "up"
endpoints = [%q]
`, authzConfig, upstream)
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	g, err := server.Build(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve("l", ln)
	t.Cleanup(g.Close)
	return ln.Addr().String()
}

func TestConnectionIsCheckedOnceAndClosedOnDeny(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cfg := plugin.Config{Name: "net-echo", Path: plugintest.Build(t, "github.com/sluice-proxy/sluice/plugins/internal/testplugins/echo")}
	plugintest.Launch(t, cfg)

	allowed := proxy(t, up.Addr, `plugin = "net-echo"`)
	resp, err := http.Get("http://" + allowed + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("allowed connection: status %d", resp.StatusCode)
	}

	denied := proxy(t, up.Addr, `plugin = "net-echo"
context_extensions = { deny = "yes" }`)
	c, err := net.Dial("tcp", denied)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not synchronisation
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("denied connection: read %d bytes, err %v; want it closed", n, err)
	}
	if up.RequestCount() != 1 {
		t.Fatalf("upstream saw %d requests, want 1", up.RequestCount())
	}
}

func TestFailedCheckClosesUnlessFailureModeAllow(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cfg := plugin.Config{Name: "net-hang", Path: plugintest.Build(t, "github.com/sluice-proxy/sluice/plugins/internal/testplugins/hang")}
	plugintest.Launch(t, cfg)
	closed := proxy(t, up.Addr, `plugin = "net-hang"
timeout = "50ms"`)
	if _, err := http.Get("http://" + closed + "/"); err == nil {
		t.Fatal("fail-closed: request succeeded over a connection whose check timed out")
	}
	open := proxy(t, up.Addr, `plugin = "net-hang"
timeout = "50ms"
failure_mode_allow = true`)
	resp, err := http.Get("http://" + open + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("fail-open: status %d", resp.StatusCode)
	}
}
