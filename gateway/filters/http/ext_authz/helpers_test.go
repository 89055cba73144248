package extauthz_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
	"github.com/sluice-proxy/sluice/gateway/server"
)

const testplugins = "github.com/sluice-proxy/sluice/plugins/internal/testplugins/"

var pluginSeq atomic.Int64

// launch builds and starts a test plugin and returns its registry name.
func launch(t *testing.T, name string, args ...string) (string, *plugin.Process) {
	t.Helper()
	cfg := plugin.Config{
		Name: fmt.Sprintf("%s-%d", name, pluginSeq.Add(1)),
		Path: plugintest.Build(t, testplugins+name),
		Args: args,
	}
	return cfg.Name, plugintest.Launch(t, cfg)
}

// echoUpstream answers with every request header as x-up-<name> and the
// request body.
func echoUpstream(t *testing.T) *testutil.Server {
	t.Helper()
	return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.Header {
			w.Header()["X-Up-"+k] = v
		}
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	}))
}

// proxy builds a generation whose HTTP connection manager runs ext_authz
// (with the given config lines) before the router, serves it on a loopback
// listener and returns the proxy's base URL. Routes under /open disable the
// filter.
func proxy(t *testing.T, upstream string, authzConfig string) string {
	t.Helper()
	text := fmt.Sprintf(`
[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "t"
route_config = "r"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.ext_authz"
[listener.filter_chain.filter.config.http_filter.config]
%s
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"

[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/open" }
cluster = "up"
disabled_filters = ["sluice.filters.http.ext_authz"]
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
	return "http://" + ln.Addr().String()
}

type result struct {
	status int
	header http.Header
	body   string
}

// do sends one request through the proxy.
func do(t *testing.T, method, url, body string, hdr ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}
