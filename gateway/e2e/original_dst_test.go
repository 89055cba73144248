package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// inNetns runs the test named name in a network namespace it creates (and
// deletes when the test ends): the test binary runs itself there with
// envKey set, and body runs in that copy, with the namespace's loopback
// up. The outer copy fails if the inner one does not pass.
func inNetns(t *testing.T, name, envKey string, body func(t *testing.T)) {
	if os.Getenv(envKey) != "" {
		netnsRun(t, "ip", "link", "set", "lo", "up")
		body(t)
		return
	}
	bin := gwtest.Binary(t)
	ns := fmt.Sprintf("sluice-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s (needs root and iproute2): %v\n%s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envKey+"="+ns, gwtest.BinaryEnv+"="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("in network namespace %s: %v\n%s", ns, err, out)
	}
}

// clientSource is the address the redirected clients connect from: the
// NAT rules match it, so that sluice's own connections to the same
// original destinations (from 127.0.0.1) are not redirected back to it.
// In a sidecar deployment the proxy runs as its own user and the rule
// excludes it with -m owner ! --uid-owner (Istio's); here the test and
// sluice are both root, so the source address tells them apart.
const clientSource = "127.0.0.5"

// tcpGreeter serves on addr: it greets each connection with "tcp-upstream
// <its address>" and echoes the lines it reads.
func tcpGreeter(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
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
				fmt.Fprintf(c, "tcp-upstream %s\n", ln.Addr())
				io.Copy(c, c)
			}()
		}
	}()
	return ln
}

// httpNamer serves HTTP on addr, answering every request with
// "http-upstream <its address>".
func httpNamer(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "http-upstream %s", ln.Addr())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// originalDstHandOffNetnsEnv marks the copy of the test binary that runs
// inside the network namespace.
const originalDstHandOffNetnsEnv = "SLUICE_E2E_ORIGINAL_DST_HANDOFF_NETNS"

// TestOriginalDstHandsOffToVirtualListeners creates a network namespace
// with iptables REDIRECT rules that send a client's connections for three
// original destinations to sluice's one bound listener (original_dst
// filter, use_original_dst = true), and checks that:
//   - a connection for 127.0.0.2:P1 is handed to the bind_to_port = false
//     listener 127.0.0.2:P1 (exact match), whose tcp_proxy forwards it
//     through an original_dst cluster to the upstream at 127.0.0.2:P1;
//   - HTTP requests for 127.0.0.3:P2 are handed to the listener
//     0.0.0.0:P2 (wildcard match), whose router forwards them through an
//     original_dst cluster to 127.0.0.3:P2, or, with
//     x-envoy-original-dst-host (use_http_header), to the address it names;
//   - a connection for an original destination no listener is configured
//     for stays on the accepting listener (its direct response);
//   - a connection made to sluice's listener directly stays there too, and
//     an original_dst cluster has no destination for it (503, no loop).
func TestOriginalDstHandsOffToVirtualListeners(t *testing.T) {
	inNetns(t, "TestOriginalDstHandsOffToVirtualListeners", originalDstHandOffNetnsEnv, originalDstHandOffInNetns)
}

func originalDstHandOffInNetns(t *testing.T) {
	tcpUp := tcpGreeter(t, "127.0.0.2:0")
	httpUp := httpNamer(t, "127.0.0.3:0")
	headerUp := httpNamer(t, "127.0.0.4:0") // reached only by x-envoy-original-dst-host
	p1, p2 := portOf(t, tcpUp.Addr().String()), portOf(t, httpUp.Addr().String())
	// An original destination with no listener: a port nothing listens on.
	free, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	p3 := portOf(t, free.Addr().String())
	free.Close()

	cfg := `
[server]
workers = 1

[log]
level = "debug"

[[listener]]
name = "outbound"
address = "127.0.0.1:0"
use_original_dst = true
` + listenerFilter("original_dst", "") + directChain("accepting", "") + `
[[listener]]
name = "tcp-exact"
address = "127.0.0.2:` + p1 + `"
bind_to_port = false

  [[listener.filter_chain]]
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.tcp_proxy"
    [listener.filter_chain.filter.config]
    stat_prefix = "odst"
    cluster = "odst-tcp"

[[listener]]
name = "http-wildcard"
address = "0.0.0.0:` + p2 + `"
bind_to_port = false
` + directChain("http", "") + `
[[route_config]]
name = "http"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/"`, "odst-http") + `
[[listener]]
name = "direct"
address = "127.0.0.1:0"
` + directChain("direct", "") + `
[[route_config]]
name = "direct"

  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
` + route(`prefix = "/"`, "odst-http") + directRoutes("accepting") + `
[[cluster]]
name = "odst-tcp"
type = "original_dst"
connect_timeout = "1s"

[[cluster]]
name = "odst-http"
type = "original_dst"
use_http_header = true
connect_timeout = "1s"
`
	p := gwtest.Start(t, cfg)
	if got := listenerNames(p); strings.Contains(got, "tcp-exact") || strings.Contains(got, "http-wildcard") {
		t.Fatalf("bind_to_port = false listeners got sockets: %s", got)
	}
	port := portOf(t, p.Addr("outbound"))
	for _, dst := range []string{"127.0.0.2", "127.0.0.3"} {
		netnsRun(t, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-s", clientSource, "-d", dst,
			"-j", "REDIRECT", "--to-ports", port)
	}

	// (a)+(b) tcp_proxy: exact address match, original_dst cluster.
	c := dialFrom(t, clientSource, tcpUp.Addr().String())
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if want := "tcp-upstream " + tcpUp.Addr().String() + "\n"; err != nil || greeting != want {
		t.Fatalf("tcp connection to %s: read %q, %v; want %q", tcpUp.Addr(), greeting, err, want)
	}
	fmt.Fprintf(c, "ping\n")
	if echo, err := br.ReadString('\n'); err != nil || echo != "ping\n" {
		t.Fatalf("echo through the handed-over connection: %q, %v", echo, err)
	}

	// (a)+(b) HTTP: wildcard match, router and original_dst cluster, with
	// and without x-envoy-original-dst-host.
	client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientSource)}}
			return d.DialContext(ctx, network, addr)
		},
	}}
	t.Cleanup(client.CloseIdleConnections)
	get := func(url string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if len(header) == 2 {
			req.Header.Set(header[0], header[1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	httpURL := "http://" + httpUp.Addr().String() + "/"
	if code, body := get(httpURL); code != 200 || body != "http-upstream "+httpUp.Addr().String() {
		t.Fatalf("GET %s: %d %q; want the upstream at the original destination", httpURL, code, body)
	}
	if code, body := get(httpURL, "x-envoy-original-dst-host", headerUp.Addr().String()); code != 200 || body != "http-upstream "+headerUp.Addr().String() {
		t.Fatalf("GET %s with x-envoy-original-dst-host %s: %d %q", httpURL, headerUp.Addr(), code, body)
	}

	// No listener for the original destination: the accepting listener
	// serves it.
	if got := rawGet(t, dialFrom(t, clientSource, net.JoinHostPort("127.0.0.2", p3)), "HTTP/1.1"); got != "accepting" {
		t.Fatalf("connection to 127.0.0.2:%s (no listener) served by %q, want the accepting listener", p3, got)
	}
	// Not redirected: the local address is sluice's own, nothing was
	// restored, and the original_dst cluster has no host for it.
	if got := rawGet(t, dial(t, p.Addr("outbound")), "HTTP/1.1"); got != "accepting" {
		t.Fatalf("direct connection served by %q, want the accepting listener", got)
	}
	if code, _ := get("http://" + p.Addr("direct") + "/"); code != 503 {
		t.Fatalf("original_dst cluster without an original destination: status %d, want 503", code)
	}
	if code, _ := get("http://"+p.Addr("direct")+"/", "x-envoy-original-dst-host", "not-an-address"); code != 503 {
		t.Fatalf("invalid x-envoy-original-dst-host: status %d, want 503", code)
	}
	if code, body := get("http://"+p.Addr("direct")+"/", "x-envoy-original-dst-host", headerUp.Addr().String()); code != 200 || body != "http-upstream "+headerUp.Addr().String() {
		t.Fatalf("x-envoy-original-dst-host on a direct connection: %d %q", code, body)
	}
}

// listenerNames returns the names in the supervisor's "listening" lines.
func listenerNames(p *gwtest.Proxy) string {
	var names []string
	for _, e := range p.Logs() {
		if e.Msg() == "listening" {
			names = append(names, e.Str("listener"))
		}
	}
	return strconv.Quote(strings.Join(names, ","))
}
