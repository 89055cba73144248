package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h3ConfigWith is h3Config with hcm lines added to the HTTP/3 listener's
// connection manager and, with logPath, an access log of its requests.
func h3ConfigWith(tcpAddr, udpAddr, certFile, keyFile, upstream, hcm, logPath string) string {
	text := h3Config(tcpAddr, udpAddr, certFile, keyFile, upstream)
	const prefix = `stat_prefix = "ingress_h3"` + "\n"
	i := strings.Index(text, prefix) + len(prefix)
	rest := text[i:]
	if logPath != "" {
		const router = `name = "sluice.filters.http.router"` + "\n"
		j := strings.Index(rest, router) + len(router)
		rest = rest[:j] + fmt.Sprintf(`      [[listener.filter_chain.filter.config.access_log]]
      path = %q
      [listener.filter_chain.filter.config.access_log.json_format]
      method = "%%REQ(:METHOD)%%"
      path = "%%REQ(:PATH)%%"
      code = "%%RESPONSE_CODE%%"
`, logPath) + rest[j:]
	}
	return text[:i] + "    " + hcm + "\n" + rest
}

// ticketCache is a client session cache that counts the tickets stored.
type ticketCache struct {
	tls.ClientSessionCache
	puts atomic.Int32
}

func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resumableClient makes a first HTTP/3 connection to addr with a session
// cache and returns a TLS config that resumes it (the cache holds a ticket).
func resumableClient(t *testing.T, ca *testutil.CA, addr string) *tls.Config {
	t.Helper()
	cache := &ticketCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	conf := &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool, ClientSessionCache: cache, NextProtos: []string{http3.NextProtoH3}}
	tr := &http3.Transport{TLSClientConfig: conf}
	defer tr.Close()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/first")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	waitFor(t, "a session ticket", 5*time.Second, func() bool { return cache.puts.Load() > 0 })
	return conf
}

// udpRelay forwards datagrams between one client and a server, holding
// the server's datagrams while hold is on: the client then gets no
// handshake reply, sends its requests as 0-RTT data only, and the server's
// handshake cannot complete.
type udpRelay struct {
	pc     net.PacketConn
	up     *net.UDPConn
	mu     sync.Mutex
	client net.Addr
	hold   bool
	held   [][]byte
}

func newUDPRelay(t *testing.T, server string) *udpRelay {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{pc: pc, up: up, hold: true}
	t.Cleanup(func() { pc.Close(); up.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			r.mu.Unlock()
			up.Write(buf[:n])
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.hold {
				r.held = append(r.held, append([]byte(nil), buf[:n]...))
			} else {
				pc.WriteTo(buf[:n], r.client)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// release forwards the held datagrams and stops holding.
func (r *udpRelay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.held {
		r.pc.WriteTo(b, r.client)
	}
	r.held, r.hold = nil, false
}

func (r *udpRelay) addr() string { return r.pc.LocalAddr().String() }

// earlyRequest sends a request on a new stream of cc without waiting for
// the handshake (quic-go's client sends it as 0-RTT data).
func earlyRequest(t *testing.T, ctx context.Context, cc *http3.ClientConn, method, path, body string) *http3.RequestStream {
	t.Helper()
	rs, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://h3.test"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	if err := rs.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		if _, err := rs.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	rs.Close()
	return rs
}

func TestHTTP3EarlyDataServesSafeMethodsAndAnswers425ToOthers(t *testing.T) {
	var upstreamSaw sync.Map
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamSaw.Store(r.Method+" "+r.URL.Path, true)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, h3ConfigWith("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr,
		"http3_protocol_options = { enable_early_data = true }", logPath))
	conf := resumableClient(t, ca, p.Addr("h3"))

	relay := newUDPRelay(t, p.Addr("h3"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, err := quic.DialAddrEarly(ctx, relay.addr(), conf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(conn)
	get := earlyRequest(t, ctx, cc, http.MethodGet, "/early-get", "")
	post := earlyRequest(t, ctx, cc, http.MethodPost, "/early-post", "payload")

	// The server answers both from 0-RTT data: it cannot have the client's
	// Finished while the relay holds its handshake reply.
	waitFor(t, "the upstream to get the early GET", 10*time.Second, func() bool {
		_, ok := upstreamSaw.Load("GET /early-get")
		return ok
	})
	waitFor(t, "the access log line of the early POST", 10*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `"/early-post"`)
	})
	relay.release()

	resp, err := get.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "GET /early-get " {
		t.Fatalf("early GET: %d %q, want 200 from the upstream", resp.StatusCode, b)
	}
	resp, err = post.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooEarly {
		t.Fatalf("early POST: %d %q, want 425 Too Early", resp.StatusCode, b)
	}
	if _, ok := upstreamSaw.Load("POST /early-post"); ok {
		t.Fatal("the early POST reached the upstream")
	}
	logText, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logText), `"code":"425"`) && !strings.Contains(string(logText), `"code":425`) {
		t.Errorf("access log has no 425 line:\n%s", logText)
	}
	select {
	case <-conn.HandshakeComplete():
	case <-ctx.Done():
		t.Fatal("handshake did not complete")
	}
	if cs := conn.ConnectionState(); !cs.Used0RTT || !cs.TLS.DidResume {
		t.Fatalf("connection state Used0RTT=%t DidResume=%t, want a resumed 0-RTT connection", cs.Used0RTT, cs.TLS.DidResume)
	}

	// After the handshake the same POST is served.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://h3.test/late-post", strings.NewReader("payload"))
	resp, err = cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "POST /late-post payload" {
		t.Fatalf("POST after the handshake: %d %q, want 200", resp.StatusCode, b)
	}
}

func TestHTTP3EarlyDataIsOffByDefault(t *testing.T) {
	p, ca := startH3(t, "127.0.0.1:0", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	conf := resumableClient(t, ca, p.Addr("h3"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, err := quic.DialAddrEarly(ctx, p.Addr("h3"), conf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(conn)
	rs := earlyRequest(t, ctx, cc, http.MethodGet, "/", "")
	resp, err := rs.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	<-conn.HandshakeComplete()
	if cs := conn.ConnectionState(); cs.Used0RTT || !cs.TLS.DidResume {
		t.Fatalf("connection state Used0RTT=%t DidResume=%t, want a resumed connection without 0-RTT", cs.Used0RTT, cs.TLS.DidResume)
	}
}
