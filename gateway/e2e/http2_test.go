package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h2cTransport speaks HTTP/2 with prior knowledge on plaintext; dials,
// unless nil, counts the connections it dials.
func h2cTransport(dials *atomic.Int64) *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			if dials != nil {
				dials.Add(1)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// h2cClient is an HTTP/2 client with prior knowledge on plaintext (see
// h2cTransport).
func h2cClient(dials *atomic.Int64) *http.Client {
	return &http.Client{Timeout: ioTimeout, Transport: h2cTransport(dials)}
}

// h2Config is the plain listener config with extra lines in the manager's
// table (e.g. an http2_protocol_options table) and the given clusters.
func h2Config(hcmExtra, routes string, clusters ...string) string {
	cfg := config(2, routes, clusters...)
	return strings.Replace(cfg, `route_config = "local"`, "route_config = \"local\"\n"+hcmExtra, 1)
}

func TestHTTP2PriorKnowledgeOnPlaintextRunsTheFilterChain(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s xff=%s", r.Method, r.Host, r.RequestURI, r.Header.Get("x-forwarded-for"))
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	resp, body := get(t, h2cClient(nil), "http://"+p.Addr("http")+"/a?b=c")
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("got %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	want := "GET " + p.Addr("http") + " /a?b=c xff=127.0.0.1"
	if string(body) != want {
		t.Fatalf("upstream saw %q, want %q", body, want)
	}
	// HTTP/1.1 still works on the same (auto) listener
	resp, _ = get(t, newClient(nil), "http://"+p.Addr("http")+"/")
	if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 on the auto listener: %s %d", resp.Proto, resp.StatusCode)
	}
}

func TestHTTP2OverTLSIsSelectedByALPN(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "a.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s", r.Header.Get("x-forwarded-proto"))
	}))
	p := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf("  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n", cert, key),
		cluster("up", up.Addr)))
	c := &http.Client{Timeout: ioTimeout, Transport: &http2.Transport{TLSClientConfig: &tls.Config{ServerName: "a.test", RootCAs: ca.Pool}}}
	resp, body := get(t, c, "https://"+p.Addr("https")+"/")
	if resp.ProtoMajor != 2 || resp.TLS.NegotiatedProtocol != "h2" || string(body) != "proto=https" {
		t.Fatalf("got %s alpn %q body %q, want HTTP/2 over h2 with proto=https", resp.Proto, resp.TLS.NegotiatedProtocol, body)
	}
}

func TestHTTP2RequestAndResponseTrailersPassThrough(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "got %d bytes, trailer %s", len(b), r.Trailer.Get("X-Check"))
		w.Header().Set("X-Sum", "42")
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/t", io.NopCloser(strings.NewReader("hello")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Check": {"ok"}}
	resp, body := do(t, h2cClient(nil), req)
	if string(body) != "got 5 bytes, trailer ok" {
		t.Fatalf("upstream saw %q", body)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Fatalf("response trailer x-sum %q, want 42 (trailers %v)", got, resp.Trailer)
	}
}

// h2Upstream is an HTTP/2 upstream: h2c prior knowledge, or TLS with ALPN h2.
func h2Upstream(t *testing.T, h http.Handler, withTLS bool) (addr string, ca *testutil.CA) {
	ln := testutil.ListenTCP(t)
	if withTLS {
		ca = testutil.NewCA(t)
		_, _, pair := ca.Leaf(t, "127.0.0.1", "up.test")
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
		srv := &http.Server{Handler: h}
		_ = http2.ConfigureServer(srv, &http2.Server{})
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String(), ca
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), nil
}

func TestHTTP2UpstreamCarriesLargeBodiesBothWays(t *testing.T) {
	const size = 8 << 20
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			addr, ca := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.ProtoMajor != 2 {
					http.Error(w, "not h2", 500)
					return
				}
				if r.Method == "POST" {
					n, _ := io.Copy(io.Discard, r.Body)
					fmt.Fprintf(w, "%d", n)
					return
				}
				w.Write(bytes.Repeat([]byte("d"), size))
			}), withTLS)
			cl := cluster("up", addr) + "protocol = \"http2\"\n"
			if withTLS {
				cl += fmt.Sprintf("  [cluster.tls]\n  sni = \"up.test\"\n  ca_file = %q\n", ca.File)
			}
			p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cl))
			c := h2cClient(nil)
			resp, body := get(t, c, "http://"+p.Addr("http")+"/big")
			if resp.StatusCode != 200 || len(body) != size {
				t.Fatalf("download: %d, %d bytes, want 200 and %d", resp.StatusCode, len(body), size)
			}
			req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/up", bytes.NewReader(bytes.Repeat([]byte("u"), size)))
			resp, body = do(t, c, req)
			if resp.StatusCode != 200 || string(body) != fmt.Sprint(size) {
				t.Fatalf("upload: %d %q, want 200 %d", resp.StatusCode, body, size)
			}
		})
	}
}

func TestHTTP2ClientCancelAbortsTheUpstreamRequest(t *testing.T) {
	started := make(chan struct{}, 1)
	aborted := make(chan struct{}, 1)
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done()
		aborted <- struct{}{}
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr("http")+"/slow", nil)
	resp, err := h2cClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	gwtest.Recv(t, started, "response headers from the upstream")
	cancel() // RST_STREAM(CANCEL)
	gwtest.Recv(t, aborted, "upstream request aborted")
}

func TestHTTP2UpstreamResetBeforeHeadersIsA503(t *testing.T) {
	addr, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // RST_STREAM upstream
	}), false)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cluster("up", addr)+"protocol = \"http2\"\n"))
	resp, _ := get(t, h2cClient(nil), "http://"+p.Addr("http")+"/")
	if resp.StatusCode != 503 {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
}

// rawH2Get opens an h2c connection to addr with its preface and SETTINGS
// and sends a GET for path as stream 1, for tests that read the frames.
func rawH2Get(t *testing.T, addr, path string) (net.Conn, *http2.Framer) {
	t.Helper()
	c := dial(t, addr)
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	return c, fr
}

// ackControl answers what a raw framer client must: a PING with its ACK
// and the server's SETTINGS with an ACK.
func ackControl(fr *http2.Framer, f http2.Frame) {
	switch f := f.(type) {
	case *http2.PingFrame:
		if !f.IsAck() {
			fr.WritePing(true, f.Data)
		}
	case *http2.SettingsFrame:
		if !f.IsAck() {
			fr.WriteSettingsAck()
		}
	}
}

func TestHTTP2DrainSendsGoawayAndFinishesInFlightStreams(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	_, fr := rawH2Get(t, p.Addr("http"), "/slow")
	gwtest.Recv(t, started, "request at the upstream")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var goaways []uint32
	gotBody := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break // the connection closed after the final GOAWAY
		}
		ackControl(fr, f)
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goaways = append(goaways, f.LastStreamID)
			if len(goaways) == 1 {
				close(release) // the in-flight stream finishes after the first GOAWAY
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && string(f.Data()) == "done" {
				gotBody = true
			}
		}
	}
	if len(goaways) < 2 || goaways[0] != 1<<31-1 || goaways[len(goaways)-1] != 1 {
		t.Fatalf("GOAWAY last-stream ids %v, want 2147483647 then 1", goaways)
	}
	if !gotBody {
		t.Fatal("the in-flight stream did not complete")
	}
}

func TestHTTP2CurlPriorKnowledgeAndALPN(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required")
	}
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	out, err := exec.Command(curl, "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "http://"+p.Addr("http")+"/").CombinedOutput()
	if err != nil || string(out) != "2 200" {
		t.Fatalf("curl --http2-prior-knowledge: %v %q", err, out)
	}
}

// h2specPath finds h2spec on PATH or in GOPATH/bin.

func TestHTTP2UpstreamInformationalResponsesReachTheClient(t *testing.T) {
	addr, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}), false)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cluster("up", addr)+"protocol = \"http2\"\n"))
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+p.Addr("http")+"/", nil)
	resp, body := do(t, h2cClient(nil), req)
	if resp.StatusCode != 200 || string(body) != "final" {
		t.Fatalf("final response %d %q, want 200 final", resp.StatusCode, body)
	}
	if len(got) != 1 || got[0] != "103 </style.css>; rel=preload" {
		t.Fatalf("informational responses %q, want one 103 with the Link field", got)
	}
}

// TestHTTP2ResponseHeadersAreNotDuplicatedOrInvented: the upstream's
// content-type, date and content-length reach an HTTP/2 client once each,
// and a response without a content-type does not get a sniffed one.
func TestHTTP2ResponseHeadersAreNotDuplicatedOrInvented(t *testing.T) {
	const date = "Mon, 02 Jan 2006 15:04:05 GMT"
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/untyped" {
			w.Header()["Content-Type"] = nil // Go's server sends none
		} else {
			w.Header().Set("Content-Type", "application/x-thing")
		}
		w.Header().Set("Date", date)
		w.Header().Set("Content-Length", "13")
		io.WriteString(w, "<html>x</html>"[:13])
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	c := h2cClient(nil)
	resp, body := get(t, c, "http://"+p.Addr("http")+"/typed")
	if resp.ProtoMajor != 2 || string(body) != "<html>x</html"[:13] {
		t.Fatalf("got %s body %q", resp.Proto, body)
	}
	for name, want := range map[string]string{"Content-Type": "application/x-thing", "Date": date, "Content-Length": "13"} {
		if got := resp.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: got %q, want exactly [%q]", name, got, want)
		}
	}
	resp, _ = get(t, c, "http://"+p.Addr("http")+"/untyped")
	if got := resp.Header.Values("Content-Type"); len(got) != 0 {
		t.Errorf("untyped response: content-type %q, want none (no sniffing by the proxy)", got)
	}
	if got := resp.Header.Values("Date"); len(got) != 1 || got[0] != date {
		t.Errorf("untyped response: date %q, want exactly [%q]", got, date)
	}
}

// The client splits its Cookie field into one field per cookie (RFC 9113
// §8.2.3, as x/net's transport does), and sends the crumbs before the
// accept-encoding and user-agent fields it adds last; an HTTP/1.1 upstream
// must get them as one Cookie field joined with "; " in their order, after
// all of the client's other fields, and exactly one Host field, the
// request's :authority. The upstream reads the head itself and sends its
// field lines back in the order they came.
func TestHTTP2CookieFieldsReachAnHTTP1UpstreamAsOneField(t *testing.T) {
	up := testutil.RawUpstream(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(ioTimeout))
		br := bufio.NewReader(c)
		var lines []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			lines = append(lines, line)
		}
		if len(lines) == 0 {
			return
		}
		body := strings.Join(lines[1:], "\n") // without the request line
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	req, err := http.NewRequest("GET", "http://"+p.Addr("http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "a=1; b=2; c=3")
	req.Header.Add("X-Thing", "one")
	req.Header.Add("X-Thing", "two")
	resp, err := h2cClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("%s %d %v", resp.Proto, resp.StatusCode, err)
	}
	var cookies, hosts, things []string
	var cookieAt, lastClientField int
	for i, line := range strings.Split(string(body), "\n") {
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "cookie":
			cookies = append(cookies, value)
			cookieAt = i
		case "host":
			hosts = append(hosts, value)
		case "x-thing":
			things = append(things, value)
			lastClientField = max(lastClientField, i)
		case "accept-encoding", "user-agent":
			lastClientField = max(lastClientField, i)
		}
	}
	if len(cookies) != 1 || cookies[0] != "a=1; b=2; c=3" {
		t.Errorf("upstream got cookie fields %q, want exactly [\"a=1; b=2; c=3\"]; head:\n%s", cookies, body)
	}
	if len(cookies) == 1 && (lastClientField == 0 || cookieAt < lastClientField) {
		t.Errorf("upstream got the cookie field before another of the client's fields (or none of them), want it after them; head:\n%s", body)
	}
	if len(hosts) != 1 || hosts[0] != p.Addr("http") {
		t.Errorf("upstream got host fields %q, want exactly [%q]; head:\n%s", hosts, p.Addr("http"), body)
	}
	if len(things) != 2 || things[0] != "one" || things[1] != "two" {
		t.Errorf("upstream got x-thing fields %q, want [\"one\" \"two\"]; head:\n%s", things, body)
	}
}

// A connection error while the client is still sending: the server's
// GOAWAY (PROTOCOL_ERROR, naming the last stream it processed) reaches the
// client whole, before the connection ends, every time: the connection is
// not closed before the GOAWAY was written. (What the lingering close
// guards against, a reset that makes a client's TCP stack drop the GOAWAY
// it has received, cannot show here: Linux keeps received bytes readable
// after a reset, so a plain close passes this test too.)
func TestHTTP2FinalGoawayReachesAClientThatKeepsSending(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	filler := make([]byte, 16384)
	for i := 0; i < 30; i++ {
		c, fr := rawH2Get(t, p.Addr("http"), "/")
		for done := false; !done; {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("connection %d: response: %v", i, err)
			}
			ackControl(fr, f)
			done = f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream)
		}
		// From here on the client writes on its own goroutine, which
		// alone uses fr's writer: unknown frames (ignored), a DATA frame
		// on stream 0 (a connection error), then more unknown frames that
		// the server does not read, until the connection fails.
		wfr := http2.NewFramer(c, nil)
		wfr.AllowIllegalWrites = true
		stop := make(chan struct{})
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if j == 4 {
					err = wfr.WriteData(0, false, []byte("x"))
				} else {
					err = wfr.WriteRawFrame(0xfa, 0, 0, filler)
				}
				if err != nil || j > 400 {
					return
				}
			}
		}()
		var goaway *http2.GoAwayFrame
		for goaway == nil {
			f, err := fr.ReadFrame()
			if err != nil {
				close(stop)
				t.Fatalf("connection %d: no GOAWAY before the connection ended: %v", i, err)
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway = g
			}
		}
		if goaway.ErrCode != http2.ErrCodeProtocol || goaway.LastStreamID != 1 {
			t.Fatalf("connection %d: GOAWAY %v last stream %d, want PROTOCOL_ERROR and 1", i, goaway.ErrCode, goaway.LastStreamID)
		}
		close(stop)
		c.Close()
		gwtest.Recv(t, writerDone, "the client's writer to stop")
	}
}
