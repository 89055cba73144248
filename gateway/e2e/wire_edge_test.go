package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h2Reply is what a raw HTTP/2 client saw on stream 1: the fields of the
// response head, the body, and the RST_STREAM code if the stream was reset.
type h2Reply struct {
	head     []hpack.HeaderField
	body     []byte
	trailers []hpack.HeaderField
	reset    bool
	code     http2.ErrCode
}

// field returns the value of the head's field name and whether it is there.
func (r *h2Reply) field(name string) (string, bool) {
	for _, f := range r.head {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// rawH2Request opens an h2c connection to addr and sends fields (in order,
// pseudo-headers included, unchecked) as the HEADERS of stream 1 with
// END_STREAM, then reads the stream until it ends or is reset.
func rawH2Request(t *testing.T, addr string, fields ...[2]string) *h2Reply {
	t.Helper()
	return rawH2Exchange(t, addr, fields, "", nil)
}

// rawH2Exchange is rawH2Request with a body (one DATA frame, unless
// empty) and trailers (a second HEADERS frame, unless nil), the last of
// them ending the stream.
func rawH2Exchange(t *testing.T, addr string, fields [][2]string, body string, trailers [][2]string) *h2Reply {
	t.Helper()
	c := dial(t, addr)
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields [][2]string) []byte {
		hb.Reset()
		for _, f := range fields {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return hb.Bytes()
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(fields),
		EndStream: body == "" && trailers == nil, EndHeaders: true})
	if body != "" {
		fr.WriteData(1, trailers == nil, []byte(body))
	}
	if trailers != nil {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(trailers), EndStream: true, EndHeaders: true})
	}
	dec := hpack.NewDecoder(4096, nil)
	r := &h2Reply{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading stream 1: %v (so far: head %v, body %q)", err, r.head, r.body)
		}
		ackControl(fr, f)
		if f.Header().StreamID != 1 {
			continue
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			fs, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatalf("decoding a response head: %v", err)
			}
			if r.head == nil || strings.HasPrefix(statusOf(r.head), "1") {
				r.head = fs // a final head replaces an informational one
			} else {
				r.trailers = fs
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.DataFrame:
			r.body = append(r.body, f.Data()...)
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			r.reset, r.code = true, f.ErrCode
			return r
		}
	}
}

func statusOf(fs []hpack.HeaderField) string {
	for _, f := range fs {
		if f.Name == ":status" {
			return f.Value
		}
	}
	return ""
}

// TestHTTP2ClientGetsNoContentLengthOnA204FromAnHTTP1Upstream: an HTTP/1.1
// upstream that sends Content-Length on a 204 (which RFC 9110 §8.6 forbids,
// and which old servers do) must not make the response malformed for an
// HTTP/2 client: a content-length of 5 on a stream that ends with no DATA is
// a PROTOCOL_ERROR to curl and nghttp2 (RFC 9113 §8.1.1). The field is
// dropped, as it is for HTTP/1.1 clients.
func TestHTTP2ClientGetsNoContentLengthOnA204FromAnHTTP1Upstream(t *testing.T) {
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := testutil.ReadRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\n"); err != nil {
				return
			}
		}
	})
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	r := rawH2Request(t, p.Addr("http"), [2]string{":method", "GET"}, [2]string{":scheme", "http"},
		[2]string{":authority", "a"}, [2]string{":path", "/"})
	if r.reset {
		t.Fatalf("stream reset with %v, want a 204", r.code)
	}
	if s := statusOf(r.head); s != "204" {
		t.Fatalf("status %q, want 204", s)
	}
	if v, ok := r.field("content-length"); ok {
		t.Fatalf("204 carries content-length %q to the HTTP/2 client (head %v)", v, r.head)
	}
	if v, _ := r.field("x-up"); v != "1" {
		t.Fatalf("x-up %q, want the upstream's other fields kept (head %v)", v, r.head)
	}

	// HTTP/1.1 clients get no content-length either.
	c := dial(t, p.Addr("http"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, _ := readResponse(t, bufio.NewReader(c), "GET")
	if resp.StatusCode != 204 || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("HTTP/1.1: status %d content-length %q, want 204 without one", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
}

// TestRequestWithoutAuthorityReachesAnHTTP1UpstreamWithAHostField: an
// HTTP/1.0 request without Host and an HTTP/2 request without :authority
// are valid, but the router forwards them as HTTP/1.1, which must carry a
// Host field (RFC 9112 §3.2: empty when there is no authority); without
// one, an upstream answers 400 (Go's server: "missing required Host
// header").
func TestRequestWithoutAuthorityReachesAnHTTP1UpstreamWithAHostField(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%q", r.Host)
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))

	c := dial(t, p.Addr("http"))
	io.WriteString(c, "GET /ten HTTP/1.0\r\n\r\n")
	resp, body := readResponse(t, bufio.NewReader(c), "GET")
	if resp.StatusCode != 200 || string(body) != `host=""` {
		t.Fatalf("HTTP/1.0 without Host: %d %q, want 200 host=\"\"", resp.StatusCode, body)
	}

	r := rawH2Request(t, p.Addr("http"), [2]string{":method", "GET"}, [2]string{":scheme", "http"},
		[2]string{":path", "/two"})
	if r.reset {
		t.Fatalf("HTTP/2 without :authority: stream reset with %v, want a response", r.code)
	}
	if s := statusOf(r.head); s != "200" || string(r.body) != `host=""` {
		t.Fatalf("HTTP/2 without :authority: %s %q, want 200 host=\"\"", s, r.body)
	}
}

// TestHTTP2FieldValueWithOuterWhitespaceIsMalformed: RFC 9113 §8.2.1 makes
// a request whose field value starts or ends with SP or HTAB malformed (a
// stream error PROTOCOL_ERROR). Forwarded to HTTP/1.1 the whitespace
// would be stripped as OWS, so the upstream would see another value than
// the one routes matched here. Whitespace inside a value, and an empty
// value, are fine.
func TestHTTP2FieldValueWithOuterWhitespaceIsMalformed(t *testing.T) {
	var served atomic.Int64
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintf(w, "x-a=%q", r.Header.Get("x-a"))
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	req := func(value string) *h2Reply {
		return rawH2Request(t, p.Addr("http"), [2]string{":method", "GET"}, [2]string{":scheme", "http"},
			[2]string{":authority", "a"}, [2]string{":path", "/"}, [2]string{"x-a", value})
	}
	for _, v := range []string{" b", "b ", "\tb", "b\t", " "} {
		if r := req(v); !r.reset || r.code != http2.ErrCodeProtocol {
			t.Errorf("value %q: reset %v code %v (status %q), want RST_STREAM PROTOCOL_ERROR", v, r.reset, r.code, statusOf(r.head))
		}
	}
	if n := served.Load(); n != 0 {
		t.Fatalf("the upstream served %d malformed requests", n)
	}
	for _, v := range []string{"b\tc d", ""} {
		r := req(v)
		if want := fmt.Sprintf("x-a=%q", v); r.reset || statusOf(r.head) != "200" || string(r.body) != want {
			t.Errorf("value %q: reset %v status %q body %q, want 200 %s", v, r.reset, statusOf(r.head), r.body, want)
		}
	}
}

// blackholeAddr returns the address of a listener whose accept queue is
// full and never drained: connects to it hang until their timeout (the
// kernel drops their SYNs).
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Backlog 0 queues one connection: fill it.
	dial(t, addr)
	return addr
}

// TestHTTP2RapidResetIsBoundedByMaxConcurrentStreams: a client that opens
// streams and resets them at once (CVE-2023-44487) stays within its
// connection's max_concurrent_streams even though each reset frees its
// slot at once: the handlers of reset streams, here stuck in an upstream
// connect, still count, new streams wait for them, and a client that has
// 4×max_concurrent_streams waiting is cut off with GOAWAY
// ENHANCE_YOUR_CALM. Before, every stream got a handler and an upstream
// connect, however many the client reset.
func TestHTTP2RapidResetIsBoundedByMaxConcurrentStreams(t *testing.T) {
	hole := blackholeAddr(t)
	p := gwtest.Start(t, h2Config("    http2_protocol_options = { max_concurrent_streams = 4 }",
		route(`prefix = "/"`, "hole"),
		fmt.Sprintf("\n[[cluster]]\nname = \"hole\"\nendpoints = [%q]\nconnect_timeout = \"30s\"\n", hole)))
	c := dial(t, p.Addr("http"))
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	goaway := watchGoAway(fr)
	// 4 handlers and 16 waiting streams are allowed; the 21st stream is
	// one too many. The client keeps going (writes may fail once the
	// server closed) up to 200 streams.
	for id := uint32(1); id < 400; id += 2 {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
	}
	awaitCalm(t, goaway, "the server keeps accepting streams whose reset handlers still run")
}

// TestHTTP10UpgradeIsIgnored: RFC 9110 §7.8 has a server ignore Upgrade in
// an HTTP/1.0 request (an HTTP/1.0 proxy may have forwarded it without
// understanding Connection). Such a request is served as a plain one:
// not refused with 403 where the route allows no upgrade, not tunnelled
// where it does, and the upstream sees neither field.
func TestHTTP10UpgradeIsIgnored(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upgrade=%q connection=%q", r.Header.Get("Upgrade"), r.Header.Get("Connection"))
	}))
	p := gwtest.Start(t, config(1, route(`prefix = "/ws"`, "up", `upgrade = ["websocket"]`)+route(`prefix = "/"`, "up"),
		cluster("up", up.Addr)))
	for _, path := range []string{"/plain", "/ws"} {
		c := dial(t, p.Addr("http"))
		io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		resp, body := readResponse(t, bufio.NewReader(c), "GET")
		if want := `upgrade="" connection=""`; resp.StatusCode != 200 || string(body) != want {
			t.Errorf("%s: %d %q, want 200 %s", path, resp.StatusCode, body, want)
		}
	}
}

// TestHTTP2TrailersWithAConnectionSpecificFieldAreMalformed: RFC 9113
// §8.2.2 makes any HTTP/2 message with a connection-specific field
// malformed, trailers included (a stream error PROTOCOL_ERROR). Such
// trailers were forwarded, and reached an HTTP/1.1 upstream as a chunked
// trailer section with, e.g., "connection: close" or
// "transfer-encoding: chunked" in it.
func TestHTTP2TrailersWithAConnectionSpecificFieldAreMalformed(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%s x-t=%s", b, r.Trailer.Get("x-t"))
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	head := [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}
	for _, name := range []string{"connection", "transfer-encoding", "keep-alive", "proxy-connection", "upgrade"} {
		r := rawH2Exchange(t, p.Addr("http"), head, "abc", [][2]string{{"x-t", "1"}, {name, "close"}})
		if !r.reset || r.code != http2.ErrCodeProtocol {
			t.Errorf("trailer %s: reset %v code %v (status %q body %q), want RST_STREAM PROTOCOL_ERROR",
				name, r.reset, r.code, statusOf(r.head), r.body)
		}
	}
	r := rawH2Exchange(t, p.Addr("http"), head, "abc", [][2]string{{"x-t", "1"}})
	if statusOf(r.head) != "200" || string(r.body) != "body=abc x-t=1" {
		t.Fatalf("valid trailers: reset %v status %q body %q, want 200 body=abc x-t=1", r.reset, statusOf(r.head), r.body)
	}
}

// TestHTTP2UpstreamGetsTheClientsAcceptEncodingAndUserAgentOnly: requests
// to an HTTP/2 cluster carry the client's Accept-Encoding and User-Agent
// and no others, and the response body comes back as the upstream encoded
// it. Go's HTTP/2 transport used to add "accept-encoding: gzip" (also next
// to a client's own gzip, since it looked for the canonical key) and
// "user-agent: Go-http-client/2.0", and then decompressed the response,
// dropping its Content-Encoding: a client that asked for gzip got the
// identity body under the gzip variant's ETag.
func TestHTTP2UpstreamGetsTheClientsAcceptEncodingAndUserAgentOnly(t *testing.T) {
	addr, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", fmt.Sprintf("ae=%q ua=%q", r.Header.Values("Accept-Encoding"), r.Header.Values("User-Agent")))
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, "compressed")
			zw.Close()
			return
		}
		io.WriteString(w, "plain")
	}), false)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cluster("up", addr)+"protocol = \"http2\"\n"))
	for _, tc := range []struct{ hdr, seen, encoding, body string }{
		{"", `ae=[] ua=[]`, "", "plain"},
		{"Accept-Encoding: gzip\r\nUser-Agent: me\r\n", `ae=["gzip"] ua=["me"]`, "gzip", "compressed"},
		{"Accept-Encoding: br\r\n", `ae=["br"] ua=[]`, "", "plain"},
	} {
		c := dial(t, p.Addr("http"))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n"+tc.hdr+"\r\n")
		resp, body := readResponse(t, bufio.NewReader(c), "GET")
		if got := resp.Header.Get("X-Seen"); got != tc.seen {
			t.Errorf("request with %q: the upstream saw %s, want %s", tc.hdr, got, tc.seen)
		}
		if got := resp.Header.Get("Content-Encoding"); got != tc.encoding {
			t.Errorf("request with %q: content-encoding %q, want %q", tc.hdr, got, tc.encoding)
		}
		if tc.encoding == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("request with %q: body is not gzip: %v (%q)", tc.hdr, err, body)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("request with %q: gunzip: %v", tc.hdr, err)
			}
		}
		if string(body) != tc.body {
			t.Errorf("request with %q: body %q, want %q", tc.hdr, body, tc.body)
		}
	}
}

// TestHTTP2MaxHeadersCountIsEnforced: max_headers_count (default 100)
// bounds HTTP/2 requests as it does HTTP/1.1 ones (431), as Envoy's
// applies to every codec; HTTP/2 requests had no bound but the header list
// size. Cookie crumbs (RFC 9113 §8.2.3, how browsers send cookies) count as
// the one field they are joined into.
func TestHTTP2MaxHeadersCountIsEnforced(t *testing.T) {
	var served atomic.Int64
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintf(w, "cookies=%d", len(r.Cookies()))
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	req := func(n int, name string) *h2Reply {
		fields := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}
		for i := range n {
			if name == "cookie" {
				fields = append(fields, [2]string{name, fmt.Sprintf("c%d=v", i)})
			} else {
				fields = append(fields, [2]string{fmt.Sprintf("%s-%d", name, i), "v"})
			}
		}
		return rawH2Request(t, p.Addr("http"), fields...)
	}
	if r := req(100, "x-h"); statusOf(r.head) != "200" {
		t.Fatalf("100 fields: status %q (reset %v %v), want 200", statusOf(r.head), r.reset, r.code)
	}
	if r := req(101, "x-h"); statusOf(r.head) != "431" {
		t.Fatalf("101 fields: status %q (reset %v %v), want 431", statusOf(r.head), r.reset, r.code)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("the upstream served %d requests, want 1 (not the one over the limit)", n)
	}
	if r := req(150, "cookie"); statusOf(r.head) != "200" || string(r.body) != "cookies=150" {
		t.Fatalf("150 cookie crumbs: status %q body %q, want 200 cookies=150", statusOf(r.head), r.body)
	}
}

// TestHTTP3MaxHeadersCountIsEnforced is TestHTTP2MaxHeadersCountIsEnforced
// over HTTP/3.
func TestHTTP3MaxHeadersCountIsEnforced(t *testing.T) {
	p, ca := startH3(t, "127.0.0.1:0", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	c := h3Client(t, ca)
	c.Timeout = ioTimeout
	for _, tc := range []struct{ n, status int }{{100, 200}, {101, 431}} {
		req, _ := http.NewRequest("GET", "https://"+p.Addr("h3")+"/", nil)
		// The client's own two fields count too.
		req.Header.Set("User-Agent", "test")
		req.Header.Set("Accept-Encoding", "identity")
		for i := range tc.n - 2 {
			req.Header.Set(fmt.Sprintf("x-h-%d", i), "v")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%d fields: %v", tc.n, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%d fields: status %d, want %d", tc.n, resp.StatusCode, tc.status)
		}
	}
}

// TestHTTP2EmptyContinuationFloodIsCutOff: a HEADERS frame whose block
// never ends, followed by empty CONTINUATION frames (or empty DATA frames
// on an open stream), costs the worker a frame's processing each and
// nothing else, so a client could keep a core busy with them indefinitely
// (CVE-2019-9518 and the CONTINUATION floods of 2024). The second empty
// frame in a row ends the connection with GOAWAY ENHANCE_YOUR_CALM, as
// Envoy's max_consecutive_inbound_frames_with_empty_payload (1) does.
func TestHTTP2EmptyContinuationFloodIsCutOff(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	c := dial(t, p.Addr("http"))
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes()})
	goaway := watchGoAway(fr)
	// Up to 100000 frames; writes fail once the server closed.
	for i := 0; i < 100000 && fr.WriteContinuation(1, false, nil) == nil; i++ {
	}
	awaitCalm(t, goaway, "the server keeps reading empty CONTINUATION frames")
}

// TestResponsesWithoutDateGetOne: RFC 9110 §6.6.1 has a proxy with a clock
// add Date to a response it forwards without one, and an origin send it on
// its own responses; Envoy's responses all carry one. An upstream response
// without Date (over HTTP/1.1 and HTTP/2) and sluice's own replies get the
// current time; an upstream's Date is kept, once.
func TestResponsesWithoutDateGetOne(t *testing.T) {
	const upDate = "Mon, 02 Jan 2006 15:04:05 GMT"
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := testutil.ReadRequest(br)
			if err != nil {
				return
			}
			extra := ""
			if req.URL.Path == "/dated" {
				extra = "Date: " + upDate + "\r\n"
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\n"+extra+"Content-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	direct := "\n    [[route_config.virtual_host.route]]\n    match = { prefix = \"/missing\" }\n    direct_response = { status = 404 }\n"
	p := gwtest.Start(t, config(1, direct+route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
	recent := func(what string, vals []string) {
		t.Helper()
		if len(vals) != 1 {
			t.Fatalf("%s: date %q, want exactly one", what, vals)
		}
		d, err := http.ParseTime(vals[0])
		if err != nil || vals[0] != d.UTC().Format(http.TimeFormat) {
			t.Fatalf("%s: date %q is not an IMF-fixdate (%v)", what, vals[0], err)
		}
		if age := time.Since(d); age < -2*time.Second || age > ioTimeout {
			t.Fatalf("%s: date %q is %v from now", what, vals[0], age)
		}
	}
	h1 := newClient(nil)
	resp, _ := get(t, h1, "http://"+p.Addr("http")+"/plain")
	recent("HTTP/1.1 upstream response", resp.Header.Values("Date"))
	resp, _ = get(t, h2cClient(nil), "http://"+p.Addr("http")+"/plain")
	recent("HTTP/2 upstream response", resp.Header.Values("Date"))
	resp, _ = get(t, h1, "http://"+p.Addr("http")+"/missing")
	if resp.StatusCode != 404 {
		t.Fatalf("direct response: status %d", resp.StatusCode)
	}
	recent("local reply", resp.Header.Values("Date"))
	resp, _ = get(t, h1, "http://"+p.Addr("http")+"/dated")
	if got := resp.Header.Values("Date"); len(got) != 1 || got[0] != upDate {
		t.Fatalf("upstream's date: got %q, want exactly [%q]", got, upDate)
	}
}

// watchGoAway reads fr's frames on a goroutine of its own and sends the
// code of the first GOAWAY with an error; it closes the channel when the
// connection ends without one. Nothing is written there (the test's
// goroutine writes): the server needs no SETTINGS ACK for these tests.
func watchGoAway(fr *http2.Framer) <-chan http2.ErrCode {
	goaway := make(chan http2.ErrCode, 1)
	go func() {
		defer close(goaway)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok && g.ErrCode != http2.ErrCodeNo {
				goaway <- g.ErrCode
				return
			}
		}
	}()
	return goaway
}

// awaitCalm fails the test unless goaway delivers ENHANCE_YOUR_CALM within
// ioTimeout; without a GOAWAY, stuck says what the server does instead.
func awaitCalm(t *testing.T, goaway <-chan http2.ErrCode, stuck string) {
	t.Helper()
	select {
	case code, ok := <-goaway:
		if !ok || code != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("connection ended without GOAWAY ENHANCE_YOUR_CALM (got %v, %v)", code, ok)
		}
	case <-time.After(ioTimeout):
		t.Fatal("no GOAWAY: " + stuck)
	}
}
