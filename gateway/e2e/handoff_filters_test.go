package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// inspectedListener is a config whose one listener runs the given listener
// filters (listenerFilter blocks) with a listener_filters_timeout of 1 s
// in front of a plaintext HTTP chain to up.
func inspectedListener(filters, upstream string) string {
	return `
[server]
workers = 1
drain_timeout = "5s"

[[listener]]
name = "edge"
address = "127.0.0.1:0"
listener_filters_timeout = "1s"
` + filters + `
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "edge"
    route_config = "local"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/"`, "up") + cluster("up", upstream)
}

// TestHandedOffConnectionOutlivesTheListenerFiltersTimeout keeps a
// keep-alive connection idle across a reload for longer than the listener's
// listener_filters_timeout, then uses it. The listener filters run on a
// connection's first bytes: the next generation must not read a moved idle
// connection's silence as a client that never sent its first byte, nor look
// for a PROXY header (which a moved connection never has) in its next
// request, when the reload added proxy_protocol.
func TestHandedOffConnectionOutlivesTheListenerFiltersTimeout(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	}))
	inspectors := listenerFilter("tls_inspector", "") + listenerFilter("http_inspector", "")
	p := gwtest.Start(t, inspectedListener(inspectors, up.Addr))
	c := dial(t, p.Addr("edge"))
	br := bufio.NewReader(c)
	get := func(what string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("%s: write: %v", what, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: the kept-alive connection: %v", what, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(b) != "xff=127.0.0.1" {
			t.Fatalf("%s: status %d, body %q, %v", what, resp.StatusCode, b, err)
		}
	}
	get("before the reloads")
	for i, filters := range []string{
		inspectors, // the same listener filters
		listenerFilter("proxy_protocol", "") + inspectors, // a PROXY header required from now on
	} {
		if err := os.WriteFile(p.ConfigPath, []byte(inspectedListener(filters, up.Addr)), 0o600); err != nil {
			t.Fatal(err)
		}
		mark := p.Mark()
		reloadOK(t, p, fmt.Sprintf("reload %d", i+1))
		done := p.WaitLogSince(t, mark, "reload complete", nil, ioTimeout)
		prev := intField(done, "previous_generation")
		p.WaitLogSince(t, mark, "generation drained", func(e map[string]any) bool { return intField(e, "generation") == prev }, ioTimeout)
		// The client's think time, longer than listener_filters_timeout.
		time.Sleep(1500 * time.Millisecond)
		get(fmt.Sprintf("after reload %d and 1.5 s idle", i+1))
	}
}
