package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// ioTimeout bounds every single network wait of a test.
const ioTimeout = 10 * time.Second

// listenerHead is the part of every test config before the routes: one
// HTTP listener "http" on 127.0.0.1:0 with the router, and a route table
// "local" with one catch-all virtual host. The workers count is %d.
const listenerHead = `
[server]
workers = %d
drain_timeout = "10s"

[[listener]]
name = "http"
address = "127.0.0.1:0"

  [[listener.filter_chain]]
  name = "default"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "ingress_http"
    route_config = "local"

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
`

// config returns a config with the given workers, route tables (TOML
// [[route_config.virtual_host.route]] blocks) and clusters.
func config(workers int, routes string, clusters ...string) string {
	return fmt.Sprintf(listenerHead, workers) + routes + "\n" + strings.Join(clusters, "\n")
}

// route returns a route block matching match (an inline TOML table body,
// e.g. `prefix = "/"`) and sending to cluster, plus extra lines.
func route(match, cluster string, extra ...string) string {
	s := fmt.Sprintf("\n    [[route_config.virtual_host.route]]\n    match = { %s }\n    cluster = %q\n", match, cluster)
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

// cluster returns a static cluster block.
func cluster(name string, endpoints ...string) string {
	q := make([]string, len(endpoints))
	for i, e := range endpoints {
		q[i] = strconv.Quote(e)
	}
	return fmt.Sprintf("\n[[cluster]]\nname = %q\nendpoints = [%s]\nconnect_timeout = \"1s\"\n", name, strings.Join(q, ", "))
}

// routerFilter is the router's http_filter table in listenerHead.
const routerFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"`

// withHTTPFilter puts an http_filter table (TOML starting with its
// [[listener.filter_chain.filter.config.http_filter]] line) before the
// router in cfg, a config built on listenerHead.
func withHTTPFilter(cfg, filter string) string {
	return strings.Replace(cfg, routerFilter, filter+routerFilter, 1)
}

// simpleConfig routes everything to one upstream.
func simpleConfig(workers int, upstream string) string {
	return config(workers, route(`prefix = "/"`, "up"), cluster("up", upstream))
}

// dial opens a raw TCP connection to addr with a deadline of ioTimeout.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// writeAsync writes b to c from another goroutine, so that a proxy that
// answers before reading everything cannot block the test; write errors
// (the proxy closing early) are expected and ignored.
func writeAsync(c net.Conn, b []byte) {
	go c.Write(b)
}

// readResponse reads one response and its whole body from br.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	resp.Body.Close()
	return resp, body
}

// assertClosed reads from br until EOF or a reset, failing if more bytes
// arrive or the peer keeps the connection open past ioTimeout.
func assertClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	extra, err := io.ReadAll(br)
	switch {
	case err == nil, isReset(err):
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open %v after the response", ioTimeout)
	default:
		t.Fatalf("reading until close: %v", err)
	}
	if len(extra) > 0 {
		t.Fatalf("unexpected bytes after the response: %q", truncate(extra, 200))
	}
}

// isReset reports whether err is a connection reset or a broken pipe.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isConnError reports whether err is a transport-level failure (refused,
// reset, EOF, closed) as opposed to a bad response.
func isConnError(err error) bool {
	var ne net.Error
	return isReset(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) ||
		strings.Contains(err.Error(), "server closed idle connection") ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// newClient returns an HTTP client whose dials are counted in *dials (if
// dials is not nil), with at most one connection per host.
func newClient(dials *atomic.Int64) *http.Client {
	d := &net.Dialer{Timeout: ioTimeout}
	tr := &http.Transport{
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	tr.DialContext = d.DialContext
	if dials != nil {
		tr.DialContext = countingDial(d, dials)
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get does a GET and returns the response and its body.
func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, c, req)
}

// do sends req and returns the response and its body.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// countingDial wraps d.DialContext, counting successful dials in n.
func countingDial(d *net.Dialer, n *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			n.Add(1)
		}
		return c, err
	}
}

// runUntilStopped runs each of runs on a goroutine of its own until stop
// is called; stop closes their channel, waits for them and may be called
// more than once. Callers defer it, so that the runs end before anything
// deferred earlier (the proxy's stop) runs.
func runUntilStopped(runs ...func(stop <-chan struct{})) (stop func()) {
	ch := make(chan struct{})
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Go(func() { run(ch) })
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(ch)
			wg.Wait()
		})
	}
	return stop
}

// controlSocket is the control socket of sluice p (its runtime directory's).
func controlSocket(p *gwtest.Proxy) string { return p.RuntimeDir + "/control.sock" }

// reload runs sluice reload of p's config file through its control socket.
func reload(t *testing.T, p *gwtest.Proxy) (code int, out string) {
	t.Helper()
	return gwtest.Exec(t, 60*time.Second, "reload", "-c", p.ConfigPath, "--control", controlSocket(p))
}

// reloadOK reloads p and fails the test (naming what) unless it succeeds.
func reloadOK(t *testing.T, p *gwtest.Proxy, what string) {
	t.Helper()
	if code, out := reload(t, p); code != 0 {
		t.Fatalf("%s: exit %d: %s", what, code, out)
	}
}

// upgradeOK runs sluice upgrade through p's control socket and returns the
// new supervisor's pid, which the test's cleanup kills; it fails the test
// (naming what) unless the upgrade succeeds.
func upgradeOK(t *testing.T, p *gwtest.Proxy, what string) int {
	t.Helper()
	code, out := gwtest.Exec(t, 60*time.Second, "upgrade", "--control", controlSocket(p))
	m := upgradedRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("%s: exit %d: %s", what, code, out)
	}
	next, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { syscall.Kill(next, syscall.SIGKILL) })
	return next
}

// longClient posts to an echoing upstream (slowEcho) in a loop over one
// connection at a time, as a long-lived client of an edge proxy does, and
// counts its dials and what happens to its requests.
type longClient struct {
	id    int
	c     *http.Client
	dials atomic.Int64
	tally
}

func (cl *longClient) base() *longClient { return cl }

// run posts until stop; every fourth request is slow upstream, so that
// requests are in flight when a generation starts draining.
func (cl *longClient) run(url string, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		u := url
		if i%4 == 0 {
			u += "?slow=1"
		}
		cl.record(postEcho(cl.c, u, fmt.Sprintf("client-%d-request-%d", cl.id, i)))
	}
}

// check fails t for every failed request of cl and for a number of dials
// outside [minDials, maxDials] (what: the restarts that allow them).
func (cl *longClient) check(t *testing.T, minDials, maxDials int64, what string) {
	t.Helper()
	if f := cl.failureList(); len(f) > 0 {
		t.Errorf("client %d: %d failed requests: %q", cl.id, len(f), f)
	}
	if d := cl.dials.Load(); d < minDials || d > maxDials {
		t.Errorf("client %d dialled %d connections %s, want %d to %d", cl.id, d, what, minDials, maxDials)
	}
}

// runLong runs every client against url until the returned stop is called.
func runLong[C interface{ base() *longClient }](url string, clients []C) (stop func()) {
	runs := make([]func(<-chan struct{}), len(clients))
	for i, c := range clients {
		cl := c.base()
		runs[i] = func(stop <-chan struct{}) { cl.run(url, stop) }
	}
	return runUntilStopped(runs...)
}
