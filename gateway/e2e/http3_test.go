package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h3Config is an HTTPS listener "https" on tcpAddr and an HTTP/3 listener
// "h3" on udpAddr, with the same certificate and routes to cluster "up".
func h3Config(tcpAddr, udpAddr, certFile, keyFile, upstream string) string {
	chain := func(prefix string) string {
		return fmt.Sprintf(`
  [[listener.filter_chain]]
  name = "tls"
    [[listener.filter_chain.tls.certificate]]
    cert_file = %q
    key_file = %q
    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.http_connection_manager"
    [listener.filter_chain.filter.config]
    stat_prefix = %q
    route_config = "local"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.router"
`, certFile, keyFile, prefix)
	}
	return fmt.Sprintf(`
[server]
workers = 2

[[listener]]
name = "https"
address = %q
%s
[[listener]]
name = "h3"
address = %q
protocol = "udp"
%s
[[route_config]]
name = "local"
  [[route_config.virtual_host]]
  name = "all"
  domains = ["*"]
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    cluster = "up"
%s
`, tcpAddr, chain("ingress_https"), udpAddr, chain("ingress_h3"), cluster("up", upstream))
}

// startH3 starts sluice with h3Config; tcpAddr and udpAddr default to
// 127.0.0.1:0.
func startH3(t *testing.T, tcpAddr, udpAddr string, h http.Handler) (*gwtest.Proxy, *testutil.CA) {
	t.Helper()
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, h)
	return gwtest.Start(t, h3Config(tcpAddr, udpAddr, cert, key, up.Addr)), ca
}

// h3Client is an HTTP/3 client trusting ca.
func h3Client(t *testing.T, ca *testutil.CA) *http.Client {
	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

func TestHTTP3GetReachesAnHTTP1UpstreamThroughTheFilterChain(t *testing.T) {
	p, ca := startH3(t, "127.0.0.1:0", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s xff=%s xfp=%s path=%s", r.Proto, r.Header.Get("x-forwarded-for"),
			r.Header.Get("x-forwarded-proto"), r.URL.Path)
	}))
	c := h3Client(t, ca)
	resp, err := c.Get("https://" + p.Addr("h3") + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" {
		t.Fatalf("got %d %s, want 200 over HTTP/3.0", resp.StatusCode, resp.Proto)
	}
	if want := "proto=HTTP/1.1 xff=127.0.0.1 xfp=https path=/hello"; string(body) != want {
		t.Fatalf("upstream saw %q, want %q", body, want)
	}
	if resp.Header.Get("alt-svc") != "" {
		t.Fatalf("an HTTP/3 response advertises Alt-Svc %q", resp.Header.Get("alt-svc"))
	}
}

func TestHTTP3PostBodyRoundTrips(t *testing.T) {
	p, ca := startH3(t, "127.0.0.1:0", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("x-len", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	c := h3Client(t, ca)
	body := bytes.Repeat([]byte("sluice-h3 "), 50_000) // 500 kB: several flow-control windows
	for i := range 3 {
		resp, err := c.Post("https://"+p.Addr("h3")+"/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("post %d: status %d, %d bytes back (err %v), want 200 and the %d bytes sent", i, resp.StatusCode, len(got), err, len(body))
		}
	}
}

func TestTCPListenerAdvertisesHTTP3OnTheSamePort(t *testing.T) {
	port := freeTCPAndUDPPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, ca := startH3(t, addr, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	resp, _, err := tlsGet(t, p.Addr("https"), &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`h3=":%d"`, port); resp.Header.Get("alt-svc") != want {
		t.Fatalf("Alt-Svc %q, want %q", resp.Header.Get("alt-svc"), want)
	}
	// The advertised endpoint answers HTTP/3.
	r3, err := h3Client(t, ca).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r3.Body)
	r3.Body.Close()
	if r3.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
		t.Fatalf("HTTP/3 on the advertised port: %d %q", r3.StatusCode, b)
	}
}

// freeTCPAndUDPPort returns a port that was free on 127.0.0.1 for both TCP
// and UDP (the kernel chose it for UDP, TCP could bind it too).
func freeTCPAndUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// TestHTTP3WorkersSurviveMalformedDatagrams sends random datagrams, and
// datagrams shaped like QUIC long-header (Initial) and short-header packets
// with garbage after the header, from several sockets to the udp listener,
// then completes an HTTP/3 request from each of those same sockets (so the
// request reaches the worker that got the garbage): every worker must
// still serve, and none may have exited.
func TestHTTP3WorkersSurviveMalformedDatagrams(t *testing.T) {
	p, ca := startH3(t, "127.0.0.1:0", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	before := p.WorkerPids()
	dst, err := net.ResolveUDPAddr("udp", p.Addr("h3"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for range 6 {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			var d []byte
			switch i % 4 {
			case 0: // anything, any size up to a jumbo datagram
				d = garbage(1 + rng.IntN(1500))
			case 1: // long header, QUIC v1, Initial, random CIDs and lengths, padded
				d = append([]byte{0xc0 | byte(rng.IntN(4)), 0, 0, 0, 1}, garbage(1200)...)
			case 2: // long header with a version nobody speaks
				d = append([]byte{0xc3, 0x1a, 0x2a, 0x3a, 0x4a}, garbage(1200)...)
			case 3: // short header (1-RTT) to an unknown connection id
				d = append([]byte{0x40 | byte(rng.IntN(64))}, garbage(20+rng.IntN(100))...)
			}
			if _, err := pc.WriteToUDP(d, dst); err != nil {
				t.Fatal(err)
			}
		}
		// A request from the same socket follows the garbage into the same
		// worker's queue.
		qt := &quic.Transport{Conn: pc}
		tr := &http3.Transport{
			TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool},
			Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
				return qt.DialEarly(ctx, dst, tlsCfg, cfg)
			},
		}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + p.Addr("h3") + "/after-garbage")
		if err != nil {
			t.Fatalf("request after malformed datagrams: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("request after malformed datagrams: %d %q", resp.StatusCode, b)
		}
		tr.Close()
		qt.Close()
	}
	for _, e := range p.Logs() {
		if e.Msg() == "worker exited" {
			t.Fatalf("a worker exited while receiving malformed datagrams: %v", e)
		}
	}
	if after := p.WorkerPids(); !maps.Equal(before, after) {
		t.Fatalf("worker pids changed from %v to %v", before, after)
	}
}

// TestHTTP3RequestInFlightFinishesDuringDrain starts a request over HTTP/3
// whose upstream holds its answer, sends SIGTERM (the workers send the
// HTTP/3 GOAWAY), checks that the request in flight still completes with
// 200 once the upstream answers, and that sluice then exits cleanly without
// waiting for drain_timeout.
func TestHTTP3RequestInFlightFinishesDuringDrain(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	p, ca := startH3(t, "127.0.0.1:0", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	c := h3Client(t, ca)
	url := "https://" + p.Addr("h3")
	if resp, err := c.Get(url + "/warm"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("warm-up request: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := c.Get(url + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{resp.StatusCode, string(b), err}
	}()
	gwtest.Recv(t, arrived, "request at the upstream")
	mark := p.Mark()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitLogSince(t, mark, "draining", nil, 10*time.Second)
	close(release)
	r := gwtest.Recv(t, slow, "answer to the request in flight")
	if r.err != nil || r.code != 200 || r.body != "done /slow" {
		t.Fatalf("request in flight at the drain: %d %q %v, want 200 \"done /slow\"", r.code, r.body, r.err)
	}
	select {
	case <-p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not exit after its HTTP/3 connections drained")
	}
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d after a drain, want 0", code)
	}
}

// TestHTTP3ConnectionsCountInTheirListenerStats checks that a udp
// listener's QUIC connections count in its listener.<address>.* stats, as
// a TCP listener's connections do (and Envoy's QUIC listeners'): total and
// active while open, destroyed and one length value once closed.
func TestHTTP3ConnectionsCountInTheirListenerStats(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	// The udp listener on an address of its own, so that its stats are
	// not shared with the tcp listener's.
	p := gwtest.Start(t, h3Config("127.0.0.1:0", "127.0.0.2:0", cert, key, up.Addr)+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	const lst = "listener.127.0.0.2_0."
	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: ioTimeout}
	for range 2 { // one connection, two requests
		resp, err := c.Get("https://" + p.Addr("h3") + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" {
			t.Fatalf("got %d %s, want 200 over HTTP/3.0", resp.StatusCode, resp.Proto)
		}
	}
	waitCounter(t, admin, lst+"downstream_cx_active", 1)
	if st := adminCounters(t, admin); st[lst+"downstream_cx_total"] != 1 {
		t.Errorf("%sdownstream_cx_total = %v with one connection open, want 1", lst, st[lst+"downstream_cx_total"])
	}
	tr.Close()
	waitCounter(t, admin, lst+"downstream_cx_destroy", 1)
	if st := adminCounters(t, admin); st[lst+"downstream_cx_active"] != 0 || st[lst+"downstream_cx_total"] != 1 {
		t.Errorf("after the close: %sdownstream_cx_active %v, _total %v; want 0, 1", lst, st[lst+"downstream_cx_active"], st[lst+"downstream_cx_total"])
	}
	if got := histogramCount(t, admin, lst+"downstream_cx_length_ms"); got != 1 {
		t.Errorf("%sdownstream_cx_length_ms has %d values, want 1", lst, got)
	}
}
