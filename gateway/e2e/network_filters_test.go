package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// tcpHead starts a config whose listeners are added with tcpListener.
const tcpHead = `
[server]
workers = %d
drain_timeout = "2s"
`

// tcpListener returns a listener block named name on addr with one filter
// chain: the given filters (TOML bodies, each the lines after a
// [[listener.filter_chain.filter]] header) in order.
func tcpListener(name, addr string, filters ...string) string {
	s := fmt.Sprintf("\n[[listener]]\nname = %q\naddress = %q\n\n  [[listener.filter_chain]]\n  name = \"tcp\"\n", name, addr)
	for _, f := range filters {
		s += "\n    [[listener.filter_chain.filter]]\n" + f
	}
	return s
}

// netFilter returns a filter body: its name and config lines.
func netFilter(name string, lines ...string) string {
	s := fmt.Sprintf("    name = \"sluice.filters.network.%s\"\n    [listener.filter_chain.filter.config]\n", name)
	for _, l := range lines {
		s += "    " + l + "\n"
	}
	return s
}

// tcpProxy returns a tcp_proxy filter body.
func tcpProxy(lines ...string) string {
	return netFilter("tcp_proxy", append([]string{`stat_prefix = "tcp"`}, lines...)...)
}

// echoUpstream echoes each connection until EOF, then closes it.
func echoUpstream(t *testing.T) *testutil.RawServer {
	return testutil.RawUpstream(t, func(c net.Conn) { io.Copy(c, c) })
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg on c and reports whether the same bytes came back.
func roundTrip(c net.Conn, msg string) bool {
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	b := make([]byte, len(msg))
	_, err := io.ReadFull(c, b)
	return err == nil && string(b) == msg
}

// echoes asserts that c echoes a message.
func echoes(t *testing.T, c net.Conn) {
	t.Helper()
	if !roundTrip(c, "ping") {
		t.Fatal("the connection did not echo through the proxy")
	}
}

// closedWithoutData asserts that the proxy closes c without sending a byte.
func closedWithoutData(t *testing.T, c net.Conn) {
	t.Helper()
	c.Write([]byte("x")) // may fail if the close came first
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v", ioTimeout)
	case err != nil && !isReset(err):
		t.Fatalf("reading until close: %v", err)
	case len(b) > 0:
		t.Fatalf("read %q from a connection that should have been closed", b)
	}
}

// TestTCPProxyEchoesLargeTransfersBothWays sends 64 MiB through tcp_proxy to
// an echo upstream while reading the echo, and checks every byte.
func TestTCPProxyEchoesLargeTransfersBothWays(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("tcp", "127.0.0.1:0", tcpProxy(`cluster = "echo"`))+cluster("echo", up.Addr))

	const size = 64 << 20
	msg := pattern(size)
	c := dial(t, p.Addr("tcp"))
	c.SetDeadline(time.Now().Add(60 * time.Second))
	got := echoedThrough(t, c, msg, writeThenCloseWrite(c))
	if len(got) != size || sha(got) != sha(msg) {
		t.Fatalf("echoed %d bytes (sha %s), want %d (sha %s)", len(got), sha(got), size, sha(msg))
	}
}

// TestTCPProxyPassesHalfCloseBothWays checks that a FIN from either side
// reaches the other while the opposite direction keeps flowing to its end.
func TestTCPProxyPassesHalfCloseBothWays(t *testing.T) {
	const tail = 1 << 20
	fromClient := make(chan []byte, 1)
	// The upstream reads to EOF, then sends tail bytes and closes.
	downFirst := testutil.RawUpstream(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		fromClient <- b
		c.Write(pattern(tail))
	})
	// The upstream greets, half-closes, then reads to EOF.
	fromClient2 := make(chan []byte, 1)
	upFirst := testutil.RawUpstream(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		fromClient2 <- b
	})
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("down", "127.0.0.1:0", tcpProxy(`cluster = "down"`))+
		tcpListener("up", "127.0.0.1:0", tcpProxy(`cluster = "up"`))+
		cluster("down", downFirst.Addr)+cluster("up", upFirst.Addr))

	t.Run("client first", func(t *testing.T) {
		c := dial(t, p.Addr("down"))
		c.Write([]byte("request"))
		c.(*net.TCPConn).CloseWrite()
		select {
		case b := <-fromClient:
			if string(b) != "request" {
				t.Fatalf("upstream read %q, want %q", b, "request")
			}
		case <-time.After(ioTimeout):
			t.Fatal("the upstream never saw the client's FIN")
		}
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, pattern(tail)) {
			t.Fatalf("client read %d bytes (err %v), want the upstream's %d then EOF", len(got), err, tail)
		}
	})
	t.Run("upstream first", func(t *testing.T) {
		c := dial(t, p.Addr("up"))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello" {
			t.Fatalf("client read %q (err %v), want hello then EOF", got, err)
		}
		c.Write([]byte("still here"))
		c.(*net.TCPConn).CloseWrite()
		select {
		case b := <-fromClient2:
			if string(b) != "still here" {
				t.Fatalf("upstream read %q, want %q", b, "still here")
			}
		case <-time.After(ioTimeout):
			t.Fatal("the upstream never saw the client's bytes and FIN")
		}
	})
}

// TestTCPProxyIdleTimeoutClosesIdleConnections checks that a connection on
// which nothing moves for idle_timeout is closed, and not before.
func TestTCPProxyIdleTimeoutClosesIdleConnections(t *testing.T) {
	up := echoUpstream(t)
	const idle = 200 * time.Millisecond
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("tcp", "127.0.0.1:0", tcpProxy(`cluster = "echo"`, `idle_timeout = "200ms"`))+cluster("echo", up.Addr))

	c := dial(t, p.Addr("tcp"))
	// Taken before the last bytes are sent: sluice sees them move after
	// this (taken after the client read the echo, it could be later than
	// sluice's last activity, which the idle timeout counts from).
	last := time.Now()
	echoes(t, c)
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("waiting for the idle close: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("read %q while idle", b)
	}
	if el := time.Since(last); el < idle {
		t.Fatalf("closed %v after the last byte, before idle_timeout %v", el, idle)
	}
}

// TestTCPProxyRetriesConnectOnTheNextHost uses clusters whose round robin
// alternates between a dead and a live host: with max_connect_attempts = 2
// every connection reaches the live one; with 1, those that drew the dead
// host are closed.
func TestTCPProxyRetriesConnectOnTheNextHost(t *testing.T) {
	up := echoUpstream(t)
	dead := testutil.DeadAddr(t)
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("retry", "127.0.0.1:0", tcpProxy(`cluster = "retry"`, `max_connect_attempts = 2`))+
		tcpListener("once", "127.0.0.1:0", tcpProxy(`cluster = "once"`))+
		cluster("retry", dead, up.Addr)+cluster("once", dead, up.Addr))

	for i := range 4 {
		if !roundTrip(dial(t, p.Addr("retry")), "ping") {
			t.Fatalf("connection %d with max_connect_attempts = 2 failed", i)
		}
	}
	ok := 0
	for range 4 {
		if roundTrip(dial(t, p.Addr("once")), "ping") {
			ok++
		}
	}
	if ok == 0 || ok == 4 {
		t.Fatalf("%d of 4 connections with one attempt each succeeded, want some but not all", ok)
	}
}

// TestTCPProxySpreadsOverWeightedClusters checks that weighted_clusters
// sends connections to every cluster with a weight.
func TestTCPProxySpreadsOverWeightedClusters(t *testing.T) {
	a, b := echoUpstream(t), echoUpstream(t)
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("tcp", "127.0.0.1:0", tcpProxy(`weighted_clusters = [{ name = "a", weight = 1 }, { name = "b", weight = 1 }]`))+
		cluster("a", a.Addr)+cluster("b", b.Addr))

	const n = 40
	for range n {
		c := dial(t, p.Addr("tcp"))
		echoes(t, c)
		c.Close()
	}
	// Each connection echoed, so its upstream had accepted it.
	if a.ConnCount() == 0 || b.ConnCount() == 0 || a.ConnCount()+b.ConnCount() != n {
		t.Fatalf("cluster a got %d connections, b %d; want both some, %d in all", a.ConnCount(), b.ConnCount(), n)
	}
}

// TestTCPProxyUnknownClusterFailsValidation checks that a tcp_proxy naming
// a cluster that does not exist is a config error.
func TestTCPProxyUnknownClusterFailsValidation(t *testing.T) {
	text := fmt.Sprintf(tcpHead, 1) + tcpListener("tcp", "127.0.0.1:0", tcpProxy(`cluster = "nowhere"`)) + cluster("echo", "127.0.0.1:1")
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
	if code == 0 || !strings.Contains(out, `"nowhere" does not exist`) {
		t.Fatalf("validate exited %d with %q, want an error naming the cluster", code, out)
	}
}

// TestConnectionLimitClosesConnectionsAboveTheLimit opens max_connections
// connections, then checks that one more is closed at once while they stay
// open and working.
func TestConnectionLimitClosesConnectionsAboveTheLimit(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("tcp", "127.0.0.1:0",
			netFilter("connection_limit", `stat_prefix = "limit"`, `max_connections = 2`),
			tcpProxy(`cluster = "echo"`))+
		cluster("echo", up.Addr))

	c1, c2 := dial(t, p.Addr("tcp")), dial(t, p.Addr("tcp"))
	echoes(t, c1)
	echoes(t, c2)
	closedWithoutData(t, dial(t, p.Addr("tcp")))
	echoes(t, c1)
	echoes(t, c2)
	if n := up.ConnCount(); n != 2 {
		t.Fatalf("upstream saw %d connections, want 2: the refused one must not reach it", n)
	}
}

// TestRBACAllowsAndDeniesBySourceAndDestination checks DENY by source
// address and ALLOW by destination address on real connections, and the
// counters in /stats.
func TestRBACAllowsAndDeniesBySourceAndDestination(t *testing.T) {
	up := echoUpstream(t)
	denySource := netFilter("rbac", `stat_prefix = "src."`, `action = "DENY"`,
		`[[listener.filter_chain.filter.config.policy]]`, `name = "banned"`, `source_ips = ["127.0.0.2/32"]`)
	allowDest := func(ip string) string {
		return netFilter("rbac", `stat_prefix = "dst."`, `action = "ALLOW"`,
			`[[listener.filter_chain.filter.config.policy]]`, `name = "only"`, fmt.Sprintf(`destination_ips = [%q]`, ip))
	}
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+"\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		tcpListener("src", "127.0.0.1:0", denySource, tcpProxy(`cluster = "echo"`))+
		tcpListener("dst_ok", "127.0.0.3:0", allowDest("127.0.0.3"), tcpProxy(`cluster = "echo"`))+
		tcpListener("dst_no", "127.0.0.3:0", allowDest("127.0.0.1"), tcpProxy(`cluster = "echo"`))+
		cluster("echo", up.Addr))

	t.Run("allowed source passes", func(t *testing.T) {
		echoes(t, dialFrom(t, "127.0.0.1", p.Addr("src")))
	})
	t.Run("denied source closed", func(t *testing.T) {
		closedWithoutData(t, dialFrom(t, "127.0.0.2", p.Addr("src")))
	})
	t.Run("allowed destination passes", func(t *testing.T) {
		echoes(t, dial(t, p.Addr("dst_ok")))
	})
	t.Run("other destination closed", func(t *testing.T) {
		closedWithoutData(t, dial(t, p.Addr("dst_no")))
	})
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	for _, name := range []string{"src.rbac.allowed", "src.rbac.denied", "dst.rbac.allowed", "dst.rbac.denied"} {
		waitCounter(t, admin, name, 1)
	}
}

// TestTCPProxyAccessLogRecordsEachConnection checks tcp_proxy's access_log:
// one line per finished connection with the downstream address, the
// cluster and host, the bytes each way, and UF when no connect succeeded
// (with the host that failed, as Envoy logs it).
func TestTCPProxyAccessLogRecordsEachConnection(t *testing.T) {
	up := echoUpstream(t)
	deadAddr := testutil.DeadAddr(t)
	logPath := filepath.Join(t.TempDir(), "tcp.log")
	accessLog := func(cl string) string {
		return tcpProxy(`cluster = "`+cl+`"`, `[[listener.filter_chain.filter.config.access_log]]`, fmt.Sprintf("path = %q", logPath),
			`format = "%DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS%\n"`)
	}
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("ok", "127.0.0.1:0", accessLog("echo"))+tcpListener("dead", "127.0.0.1:0", accessLog("dead"))+
		cluster("echo", up.Addr)+cluster("dead", deadAddr))

	c := dial(t, p.Addr("ok"))
	if !roundTrip(c, "ping-1234") {
		t.Fatal("no echo through tcp_proxy")
	}
	okFrom := c.LocalAddr().String()
	c.Close()
	d := dial(t, p.Addr("dead"))
	closedWithoutData(t, d)
	deadFrom := d.LocalAddr().String()

	want := map[string]string{
		okFrom:   fmt.Sprintf("%s echo %s 9 9 -", okFrom, up.Addr),
		deadFrom: fmt.Sprintf("%s dead %s 0 0 UF", deadFrom, deadAddr),
	}
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want %d: %q", len(lines), len(want), lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		b, _ := os.ReadFile(logPath)
		lines = strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
	}
	for _, l := range lines {
		from, _, _ := strings.Cut(l, " ")
		if want[from] != l {
			t.Errorf("access log line %q, want %q", l, want[from])
		}
		delete(want, from)
	}
	if len(want) != 0 {
		t.Errorf("no access log line for %v", want)
	}
}

// TestTCPProxyOriginatesTLSToATLSCluster proxies plaintext downstream
// connections to a cluster with a tls table: the upstream, a TLS echo
// server, sees a TLS handshake with the cluster's SNI (and the echo comes
// back), and a host whose certificate the cluster's CA does not trust gets
// no byte of the connection, which is closed (UF).
func TestTCPProxyOriginatesTLSToATLSCluster(t *testing.T) {
	ca := testutil.NewCA(t)
	_, _, pair := ca.Leaf(t, "echo.test")
	sni := make(chan string, 8)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			select {
			case sni <- h.ServerName:
			default:
			}
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				io.Copy(c, c)
			}()
		}
	}()
	wrongCA := testutil.NewCA(t)
	tlsCluster := func(name, caFile string) string {
		return cluster(name, ln.Addr().String()) + fmt.Sprintf("[cluster.tls]\nca_file = %q\nsni = \"echo.test\"\n", caFile)
	}
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+
		tcpListener("good", "127.0.0.1:0", tcpProxy(`cluster = "good"`))+
		tcpListener("bad", "127.0.0.1:0", tcpProxy(`cluster = "bad"`))+
		tlsCluster("good", ca.File)+tlsCluster("bad", wrongCA.File))

	c := dial(t, p.Addr("good"))
	echoes(t, c)
	select {
	case got := <-sni:
		if got != "echo.test" {
			t.Fatalf("upstream saw SNI %q, want echo.test", got)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the upstream saw no TLS handshake")
	}
	closedWithoutData(t, dial(t, p.Addr("bad")))
}

// TestTCPProxyConnectionsCountInTheirClusterStats checks that the
// upstream connections tcp_proxy makes count in the cluster's stats, as
// Envoy's do: upstream_cx_total for every attempt, upstream_cx_active
// while one is open, upstream_cx_connect_ms for each made, and
// upstream_cx_connect_fail for each refused.
func TestTCPProxyConnectionsCountInTheirClusterStats(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+"\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		tcpListener("ok", "127.0.0.1:0", tcpProxy(`cluster = "echo"`))+tcpListener("dead", "127.0.0.1:0", tcpProxy(`cluster = "dead"`))+
		cluster("echo", up.Addr)+cluster("dead", testutil.DeadAddr(t)))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	c := dial(t, p.Addr("ok"))
	echoes(t, c)
	waitCounter(t, admin, "cluster.echo.upstream_cx_active", 1)
	if st := adminCounters(t, admin); st["cluster.echo.upstream_cx_total"] != 1 {
		t.Errorf("cluster.echo.upstream_cx_total = %v with one connection open, want 1", st["cluster.echo.upstream_cx_total"])
	}
	c.Close()
	// A gauge going down: waitCounter fails once it is above its target.
	for deadline := time.Now().Add(ioTimeout); adminCounters(t, admin)["cluster.echo.upstream_cx_active"] != 0; {
		if time.Now().After(deadline) {
			t.Fatal("cluster.echo.upstream_cx_active still not 0 after the connection closed")
		}
		time.Sleep(20 * time.Millisecond) // polling the admin API, which has no wait
	}
	closedWithoutData(t, dial(t, p.Addr("dead")))
	waitCounter(t, admin, "cluster.dead.upstream_cx_connect_fail", 1)
	st := adminCounters(t, admin)
	if st["cluster.echo.upstream_cx_total"] != 1 || st["cluster.dead.upstream_cx_total"] != 1 {
		t.Errorf("upstream_cx_total: echo %v, dead %v; want 1 each", st["cluster.echo.upstream_cx_total"], st["cluster.dead.upstream_cx_total"])
	}
	if got := histogramCount(t, admin, "cluster.echo.upstream_cx_connect_ms"); got != 1 {
		t.Errorf("cluster.echo.upstream_cx_connect_ms has %d values, want 1", got)
	}
}

// histogramCount reads the number of values of histogram name from the
// admin /stats?format=json.
func histogramCount(t *testing.T, addr, name string) uint64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + addr + "/stats?format=json&filter=" + url.QueryEscape("^"+regexp.QuoteMeta(name)+"$"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Stats []struct {
			Name  string `json:"name"`
			Count uint64 `json:"count"`
		} `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("admin /stats: %v", err)
	}
	for _, s := range doc.Stats {
		if s.Name == name {
			return s.Count
		}
	}
	t.Fatalf("admin /stats has no %s", name)
	return 0
}

// TestPrometheusLabelsTCPProxyStatsWithTheirPrefix checks /stats/prometheus
// with a strict parser on a config with two tcp_proxy stat_prefixes: their
// stats are one family each, with the prefix as the tcp_prefix label (as
// Envoy's tag extractor makes envoy_tcp_prefix), not a family per prefix.
func TestPrometheusLabelsTCPProxyStatsWithTheirPrefix(t *testing.T) {
	up := echoUpstream(t)
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+"\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		tcpListener("a", "127.0.0.1:0", netFilter("tcp_proxy", `stat_prefix = "db"`, `cluster = "echo"`))+
		tcpListener("b", "127.0.0.1:0", netFilter("tcp_proxy", `stat_prefix = "cache"`, `cluster = "echo"`))+
		cluster("echo", up.Addr))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	for _, l := range []string{"a", "b", "b"} {
		c := dial(t, p.Addr(l))
		echoes(t, c)
		c.Close()
	}
	waitCounter(t, admin, "tcp.cache.downstream_cx_total", 2)
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/stats/prometheus: %d %v", resp.StatusCode, err)
	}
	fams, err := testutil.ParsePrometheusText(string(body))
	if err != nil {
		t.Fatalf("/stats/prometheus: %v\n%s", err, body)
	}
	got := map[string]float64{}
	for _, s := range fams["sluice_tcp_downstream_cx_total"] {
		got[s.Labels["tcp_prefix"]] = s.Value
	}
	if len(got) != 2 || got["db"] != 1 || got["cache"] != 2 {
		t.Errorf("sluice_tcp_downstream_cx_total by tcp_prefix = %v, want db 1, cache 2\n%s", got, body)
	}
	for fam := range fams {
		if strings.HasPrefix(fam, "sluice_tcp_db_") || strings.HasPrefix(fam, "sluice_tcp_cache_") {
			t.Errorf("family %s carries the stat_prefix in its name", fam)
		}
	}
}
