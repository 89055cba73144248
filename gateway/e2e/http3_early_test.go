package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/qlogwriter"

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

// qlogBuffer collects a client connection's qlog.
type qlogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (q *qlogBuffer) Write(b []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.buf.Write(b)
}

func (q *qlogBuffer) Close() error { return nil }

func (q *qlogBuffer) String() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.buf.String()
}

func TestHTTP3FlowControlWindowsComeFromTheConfig(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	p := gwtest.Start(t, h3ConfigWith("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr,
		"http3_protocol_options = { initial_stream_window_size = 4096, max_stream_window_size = 8192, "+
			"initial_connection_window_size = 12288, max_connection_window_size = 65536 }", ""))
	ql := &qlogBuffer{}
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool},
		QUICConfig: &quic.Config{Tracer: func(_ context.Context, isClient bool, id quic.ConnectionID) qlogwriter.Trace {
			fs := qlogwriter.NewConnectionFileSeq(ql, isClient, id)
			go fs.Run()
			return fs
		}},
	}
	defer tr.Close()
	// 1 MB through windows of a few kB: many window updates, no stall.
	body := bytes.Repeat([]byte("window "), 150_000)
	resp, err := (&http.Client{Transport: tr}).Post("https://"+p.Addr("h3")+"/up", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("upload: %d, %d bytes back (%v), want 200 and %d bytes", resp.StatusCode, len(got), err, len(body))
	}
	// The server's transport parameters, as the client logged them.
	for _, want := range []string{`"initial_max_stream_data_bidi_remote":4096`, `"initial_max_data":12288`} {
		waitFor(t, "the server's transport parameters "+want+" in the client's qlog", 5*time.Second, func() bool {
			return strings.Contains(ql.String(), want)
		})
	}
	// Auto-tuning never grants a stream more than max_stream_window_size
	// beyond what was read: the largest MAX_STREAM_DATA offset stays below
	// the body size plus that window.
	var updates [][]string
	re := regexp.MustCompile(`"frame_type":"max_stream_data","stream_id":0,"maximum":(\d+)`)
	ecn := false
	for _, rec := range strings.Split(ql.String(), "\x1e") {
		if strings.Contains(rec, "packet_received") { // not the client's own updates
			updates = append(updates, re.FindAllStringSubmatch(rec, -1)...)
			ecn = ecn || strings.Contains(rec, `"ecn":"ECT(0)"`)
		}
	}
	// quic-go keeps ECN on the worker's socket (a *net.UDPConn from the
	// passed descriptor): its packets arrive marked ECT(0).
	if !ecn {
		t.Error("no packet from sluice arrived with an ECT(0) mark")
	}
	if len(updates) < 10 {
		i := strings.Index(ql.String(), `"max_stream_data"`)
		t.Fatalf("the client logged %d MAX_STREAM_DATA frames for the upload, want many: %.300s", len(updates), ql.String()[max(i-100, 0):])
	}
	for _, m := range updates {
		if n, _ := strconv.Atoi(m[1]); n > len(body)+8192+1024 {
			t.Fatalf("the server granted stream 0 up to %d bytes, more than the body and an 8 KiB window", n)
		}
	}
}

func TestHTTP3FlowControlWindowErrorsNameFileLineAndKey(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	for _, tc := range []struct{ opts, key string }{
		{"initial_stream_window_size = 10", `http3_protocol_options\.initial_stream_window_size: must be in 1024\.\.`},
		{"initial_stream_window_size = 65536, max_stream_window_size = 4096", `http3_protocol_options\.max_stream_window_size: must be at least initial_stream_window_size`},
		{"max_connection_window_size = 2000000000", `http3_protocol_options\.max_connection_window_size: must be in`},
	} {
		text := h3ConfigWith("127.0.0.1:0", "127.0.0.1:0", cert, key, "127.0.0.1:1",
			"http3_protocol_options = { "+tc.opts+" }", "")
		path := filepath.Join(t.TempDir(), "bad.toml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
		want := fmt.Sprintf("%s:%d:", path, lineOf(t, text, tc.opts))
		if code != 1 || !strings.Contains(out, want) || !regexp.MustCompile(tc.key).MatchString(out) {
			t.Errorf("%s: validate exit %d, want 1 and %q and /%s/; output:\n%s", tc.opts, code, want, tc.key, out)
		}
	}
}
