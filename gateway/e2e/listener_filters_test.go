package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// directChain is a filter chain named name, selected by match (an inline
// TOML table body, may be empty), whose HTTP connection manager answers
// every request with 200 and the chain's name, from route_config name.
func directChain(name, match string) string {
	m := ""
	if match != "" {
		m = fmt.Sprintf("  match = { %s }\n", match)
	}
	return fmt.Sprintf(`
  [[listener.filter_chain]]
  name = %[1]q
%[2]s
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = %[1]q
    route_config = %[1]q

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
`, name, m)
}

// directRoutes is the route_config for directChain(name).
func directRoutes(name string) string {
	return fmt.Sprintf(`
[[route_config]]
name = %[1]q

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]

    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    direct_response = { status = 200, body = %[1]q }
`, name)
}

// listenerFilter is a [[listener.listener_filter]] block.
func listenerFilter(name, config string) string {
	s := fmt.Sprintf("\n  [[listener.listener_filter]]\n  name = \"sluice.filters.listener.%s\"\n", name)
	if config != "" {
		s += "  [listener.listener_filter.config]\n  " + config + "\n"
	}
	return s
}

// chainChosen waits for the worker's debug line naming the chain picked
// for a connection with this SNI.
func chainChosen(t *testing.T, p *gwtest.Proxy, mark int, sni string) string {
	t.Helper()
	e := p.WaitLogSince(t, mark, "filter chain chosen", func(e map[string]any) bool { return e["sni"] == sni }, ioTimeout)
	s, _ := e["chain"].(string)
	return s
}

// rawGet sends a GET for / with the given HTTP version over c and returns
// the response body.
func rawGet(t *testing.T, c net.Conn, version string) string {
	t.Helper()
	fmt.Fprintf(c, "GET / %s\r\nHost: x\r\nConnection: close\r\n\r\n", version)
	resp, body := readResponse(t, bufio.NewReader(c), "GET")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

// TestTLSInspectorChoosesChainsBySNI runs a listener with tls_inspector
// and http_inspector: real crypto/tls clients land on the chain matched by
// their SNI (exact and wildcard), an unknown SNI matches no chain and is
// closed, plaintext HTTP/1.1 and HTTP/1.0 land on chains matched by
// transport and application protocol, and a ClientHello that never
// completes is closed by listener_filters_timeout.
func TestTLSInspectorChoosesChainsBySNI(t *testing.T) {
	cfg := `
[server]
workers = 1

[log]
level = "debug"

[[listener]]
name = "edge"
address = "127.0.0.1:0"
listener_filters_timeout = "300ms"
` + listenerFilter("tls_inspector", "") + listenerFilter("http_inspector", "") +
		directChain("chain-a", `server_names = ["a.example"]`) +
		directChain("chain-b", `server_names = ["*.b.example"]`) +
		directChain("plain11", `transport_protocol = "raw_buffer", application_protocols = ["http/1.1"]`) +
		directChain("plain10", `transport_protocol = "raw_buffer", application_protocols = ["http/1.0"]`) +
		directRoutes("chain-a") + directRoutes("chain-b") + directRoutes("plain11") + directRoutes("plain10")
	p := gwtest.Start(t, cfg)
	addr := p.Addr("edge")

	for sni, want := range map[string]string{"a.example": "chain-a", "x.b.example": "chain-b"} {
		mark := p.Mark()
		c := dial(t, addr)
		// the chain runs plaintext HTTP: it answers the ClientHello with a
		// 400, which the TLS client sees as a non-TLS record
		err := tls.Client(c, &tls.Config{ServerName: sni, NextProtos: []string{"h2", "http/1.1"}}).Handshake()
		var rh tls.RecordHeaderError
		if !errors.As(err, &rh) || string(rh.RecordHeader[:]) != "HTTP/" {
			t.Fatalf("sni %s: handshake error %v, want the chain's HTTP answer", sni, err)
		}
		if got := chainChosen(t, p, mark, sni); got != want {
			t.Fatalf("sni %s: chain %q, want %q", sni, got, want)
		}
	}

	mark := p.Mark()
	c := dial(t, addr)
	err := tls.Client(c, &tls.Config{ServerName: "c.example"}).Handshake()
	if err == nil || !isConnError(err) {
		t.Fatalf("unknown sni: handshake error %v, want the connection closed", err)
	}
	p.WaitLogSince(t, mark, "no filter chain matched", func(e map[string]any) bool { return e["sni"] == "c.example" }, ioTimeout)

	if got := rawGet(t, dial(t, addr), "HTTP/1.1"); got != "plain11" {
		t.Fatalf("plaintext HTTP/1.1 served by %q", got)
	}
	if got := rawGet(t, dial(t, addr), "HTTP/1.0"); got != "plain10" {
		t.Fatalf("plaintext HTTP/1.0 served by %q", got)
	}

	// half a record header, then silence: closed after 300ms
	c = dial(t, addr)
	start := time.Now()
	c.Write([]byte{0x16, 0x03, 0x01})
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("stalled ClientHello: %v after %v", err, time.Since(start))
	}
	if len(b) > 0 {
		t.Fatalf("stalled ClientHello got an answer: %q", b)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("stalled ClientHello closed after %v, before listener_filters_timeout", d)
	}
}

// proxyV2 is a PROXY v2 header for a TCP connection from src to dst, with
// one TLV.
func proxyV2(src, dst *net.TCPAddr) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21")
	var addrs []byte
	if ip4 := src.IP.To4(); ip4 != nil {
		b = append(b, 0x11)
		addrs = append(append(addrs, ip4...), dst.IP.To4()...)
	} else {
		b = append(b, 0x21)
		addrs = append(append(addrs, src.IP.To16()...), dst.IP.To16()...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, uint16(src.Port))
	addrs = binary.BigEndian.AppendUint16(addrs, uint16(dst.Port))
	addrs = append(addrs, 0x02, 0, 9) // PP2_TYPE_AUTHORITY
	addrs = append(addrs, "a.example"...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	return append(b, addrs...)
}

// TestProxyProtocolReplacesClientAddress sends PROXY v1 and v2 headers
// before a request: the upstream sees the PROXY source address in
// x-forwarded-for, and a connection without a header is closed unanswered.
func TestProxyProtocolReplacesClientAddress(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	}))
	cfg := `
[server]
workers = 1

[[listener]]
name = "lb"
address = "127.0.0.1:0"
` + listenerFilter("proxy_protocol", "") + `
  [[listener.filter_chain]]
  name = "default"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "lb"
    route_config = "local"

      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/"`, "up") + cluster("up", up.Addr)
	p := gwtest.Start(t, cfg)
	addr := p.Addr("lb")

	for name, tc := range map[string]struct {
		header []byte
		want   string
	}{
		"v1":       {[]byte("PROXY TCP4 203.0.113.7 127.0.0.1 40001 80\r\n"), "203.0.113.7"},
		"v2 inet":  {proxyV2(&net.TCPAddr{IP: net.ParseIP("198.51.100.9"), Port: 40002}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}), "198.51.100.9"},
		"v2 inet6": {proxyV2(&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40003}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 80}), "2001:db8::7"},
	} {
		c := dial(t, addr)
		c.Write(tc.header)
		if got := rawGet(t, c, "HTTP/1.1"); got != "xff="+tc.want {
			t.Fatalf("%s: upstream saw %q, want xff=%s", name, got, tc.want)
		}
	}

	c := dial(t, addr)
	writeAsync(c, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	b, err := io.ReadAll(c)
	if (err != nil && !isReset(err)) || len(b) > 0 {
		t.Fatalf("without a PROXY header: read %q, %v; want a close", b, err)
	}
}

// originalDstNetnsEnv marks the copy of the test binary that runs inside
// the network namespace.
const originalDstNetnsEnv = "SLUICE_E2E_ORIGINAL_DST_NETNS"

// TestOriginalDstRoutesByOriginalPort creates a network namespace and runs
// itself (and so sluice) inside it, where iptables REDIRECT rules send
// connections for 127.0.0.2:7001 and :7002 to sluice's listener: with the
// original_dst filter, each lands on the chain matched by its original
// destination_port; a direct connection lands on the catch-all chain.
func TestOriginalDstRoutesByOriginalPort(t *testing.T) {
	if os.Getenv(originalDstNetnsEnv) != "" {
		originalDstInNetns(t)
		return
	}
	bin := gwtest.Binary(t)
	ns := fmt.Sprintf("sluice-e2e-odst-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s (needs root and iproute2): %v\n%s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0],
		"-test.run", "^TestOriginalDstRoutesByOriginalPort$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), originalDstNetnsEnv+"="+ns, gwtest.BinaryEnv+"="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestOriginalDstRoutesByOriginalPort") {
		t.Fatalf("in network namespace %s: %v\n%s", ns, err, out)
	}
}

func originalDstInNetns(t *testing.T) {
	netnsRun(t, "ip", "link", "set", "lo", "up")
	cfg := `
[server]
workers = 1

[[listener]]
name = "outbound"
address = "127.0.0.1:0"
` + listenerFilter("original_dst", "") +
		directChain("port-7001", `destination_port = 7001`) +
		directChain("port-7002", `destination_port = 7002`) +
		directChain("direct", "") +
		directRoutes("port-7001") + directRoutes("port-7002") + directRoutes("direct")
	p := gwtest.Start(t, cfg)
	_, port, err := net.SplitHostPort(p.Addr("outbound"))
	if err != nil {
		t.Fatal(err)
	}
	for _, orig := range []string{"7001", "7002"} {
		netnsRun(t, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.2", "--dport", orig,
			"-j", "REDIRECT", "--to-ports", port)
	}
	for dst, want := range map[string]string{
		"127.0.0.2:7001":   "port-7001",
		"127.0.0.2:7002":   "port-7002",
		p.Addr("outbound"): "direct",
	} {
		if got := rawGet(t, dial(t, dst), "HTTP/1.1"); got != want {
			t.Fatalf("connection to %s served by %q, want %q", dst, got, want)
		}
	}
}

func netnsRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestFilterChainMatchPrefersTheClientsFirstALPNProtocol offers several
// ALPN protocols that different chains match: as in Envoy, the chain
// matching the protocol the client lists first wins, whatever the order
// of the chains in the config.
func TestFilterChainMatchPrefersTheClientsFirstALPNProtocol(t *testing.T) {
	cfg := `
[server]
workers = 1

[log]
level = "debug"

[[listener]]
name = "edge"
address = "127.0.0.1:0"
` + listenerFilter("tls_inspector", "") +
		directChain("http11", `application_protocols = ["http/1.1"]`) +
		directChain("h2", `application_protocols = ["h2"]`) +
		directRoutes("http11") + directRoutes("h2")
	p := gwtest.Start(t, cfg)
	for i, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"h2", "http/1.1"}, "h2"},
		{[]string{"http/1.1", "h2"}, "http11"},
		{[]string{"spdy/3", "h2"}, "h2"},
	} {
		sni := fmt.Sprintf("alpn%d.example", i)
		mark := p.Mark()
		c := dial(t, p.Addr("edge"))
		// the chain answers the ClientHello in plaintext; the handshake
		// fails, the chain was chosen
		tls.Client(c, &tls.Config{ServerName: sni, NextProtos: tc.offer}).Handshake()
		if got := chainChosen(t, p, mark, sni); got != tc.want {
			t.Errorf("ALPN %v: chain %q, want %q", tc.offer, got, tc.want)
		}
	}
}

// TestProxyProtocolClientAddressSurvivesAReload keeps an HTTP/1.1
// connection that began with a PROXY header open across a reload: the
// header is gone from the stream, so the next generation, which would run
// the listener filters again, must never serve the connection's next
// request under the load balancer's address. The connection is either
// served with the PROXY source or closed by the draining generation.
func TestProxyProtocolClientAddressSurvivesAReload(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	}))
	cfg := `
[server]
workers = 1
drain_timeout = "5s"

[[listener]]
name = "lb"
address = "127.0.0.1:0"
` + listenerFilter("proxy_protocol", "allow_requests_without_proxy_protocol = true") + `
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "lb"
    route_config = "local"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/"`, "up") + cluster("up", up.Addr)
	p := gwtest.Start(t, cfg)
	c := dial(t, p.Addr("lb"))
	br := bufio.NewReader(c)
	get := func() (string, error) {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	c.Write([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 40001 80\r\n"))
	if got, err := get(); err != nil || got != "xff=203.0.113.7" {
		t.Fatalf("before the reload: %q, %v", got, err)
	}
	mark := p.Mark()
	reloadOK(t, p, "reload")
	// the first generation's worker is gone: the connection is either
	// closed or in the second generation's hands
	p.WaitLogSince(t, mark, "drained, exiting", func(e map[string]any) bool { return e["generation"] == 1.0 }, ioTimeout)
	got, err := get()
	if err == nil && got != "xff=203.0.113.7" {
		t.Fatalf("after the reload the connection's request was served as %q, want xff=203.0.113.7", got)
	}
	// a new connection still gets its PROXY address
	c2 := dial(t, p.Addr("lb"))
	c2.Write([]byte("PROXY TCP4 203.0.113.8 127.0.0.1 40002 80\r\n"))
	if got := rawGet(t, c2, "HTTP/1.1"); got != "xff=203.0.113.8" {
		t.Fatalf("new connection after the reload: %q", got)
	}
}

// TestDualStackListenerReportsIPv4ClientsAsIPv4 serves an IPv4 client on
// a listener bound to every interface (a dual-stack IPv6 socket, which
// sees the client as ::ffff:a.b.c.d): as in Envoy, the client's address
// is its IPv4 one in x-forwarded-for and in source-based chain matching.
func TestDualStackListenerReportsIPv4ClientsAsIPv4(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	}))
	cfg := `
[server]
workers = 1

[[listener]]
name = "all"
address = ":0"
  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = "all"
    route_config = "local"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"

[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/"`, "up") + cluster("up", up.Addr)
	p := gwtest.Start(t, cfg)
	_, port, _ := net.SplitHostPort(p.Addr("all"))
	if got := rawGet(t, dial(t, net.JoinHostPort("127.0.0.1", port)), "HTTP/1.1"); got != "xff=127.0.0.1" {
		t.Fatalf("IPv4 client on a dual-stack listener: upstream saw %q, want xff=127.0.0.1", got)
	}
}

// TestContinueOnListenerFiltersTimeoutServesServerFirstProtocols puts a
// tls_inspector in front of a tcp_proxy to an upstream that speaks first
// (a greeting, as SMTP or MySQL servers send): the client waits for it and
// sends nothing, so the inspector runs out of time. With
// continue_on_listener_filters_timeout the connection goes on to its chain
// and the client gets the greeting; without it the connection is closed.
func TestContinueOnListenerFiltersTimeoutServesServerFirstProtocols(t *testing.T) {
	greeter := testutil.RawUpstream(t, func(c net.Conn) {
		io.WriteString(c, "220 greeter ready\r\n")
		io.Copy(io.Discard, c)
	})
	listenerWith := func(name, opt string) string {
		return fmt.Sprintf("\n[[listener]]\nname = %q\naddress = \"127.0.0.1:0\"\nlistener_filters_timeout = \"300ms\"\n%s\n", name, opt) +
			listenerFilter("tls_inspector", "") +
			"\n  [[listener.filter_chain]]\n  name = \"tcp\"\n    [[listener.filter_chain.filter]]\n" + tcpProxy(`cluster = "greeter"`)
	}
	p := gwtest.Start(t, fmt.Sprintf(tcpHead, 1)+"\n[admin]\naddress = \"127.0.0.1:0\"\n"+
		listenerWith("continues", "continue_on_listener_filters_timeout = true")+
		listenerWith("closes", "")+
		cluster("greeter", greeter.Addr))
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	c := dial(t, p.Addr("continues"))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "220 greeter ready\r\n" {
		t.Fatalf("continue_on_listener_filters_timeout: read %q, %v; want the upstream's greeting", line, err)
	}
	c = dial(t, p.Addr("closes"))
	if b, err := io.ReadAll(c); (err != nil && !isReset(err)) || len(b) > 0 {
		t.Fatalf("without the option: read %q, %v; want the connection closed without data", b, err)
	}
	// Both timed out in their listener filters (Envoy's counter; both
	// listeners are named after their configured address, 127.0.0.1:0).
	waitCounter(t, admin, "listener.127.0.0.1_0.downstream_pre_cx_timeout", 2)
}
