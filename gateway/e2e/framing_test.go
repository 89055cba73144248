package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// framingUpstream serves the body-framing cases; every response reports
// what the upstream saw of the request in x-seen-* headers.
func framingUpstream() http.Handler {
	mux := http.NewServeMux()
	// /sink reads the request body and reports its length, digest,
	// framing and trailers.
	mux.HandleFunc("/sink", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Seen-Length", strconv.FormatInt(n, 10))
		w.Header().Set("X-Seen-Content-Length", strconv.FormatInt(r.ContentLength, 10))
		w.Header().Set("X-Seen-Transfer-Encoding", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Seen-Sha256", hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("X-Seen-Trailer", r.Trailer.Get("X-Checksum"))
		w.Header().Set("X-Seen-Expect", r.Header.Get("Expect"))
	})
	// /fixed answers n bytes with a Content-Length.
	mux.HandleFunc("/fixed", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		if r.Method != http.MethodHead {
			w.Write(pattern(n))
		}
	})
	// /chunked answers n bytes in flushed pieces, without a length, and a
	// trailer.
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Trailer", "X-Resp-Checksum")
		body := pattern(n)
		for len(body) > 0 {
			k := min(len(body), 7000)
			w.Write(body[:k])
			w.(http.Flusher).Flush()
			body = body[k:]
		}
		sum := sha256.Sum256(pattern(n))
		w.Header().Set("X-Resp-Checksum", hex.EncodeToString(sum[:]))
	})
	// /status/N answers status N.
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(code)
	})
	return mux
}

// pattern returns n deterministic bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestBodyFramingIsProxiedBothWays sends and receives every HTTP/1.1 body
// framing through sluice and checks that both ends see exactly what the
// other sent.
func TestBodyFramingIsProxiedBothWays(t *testing.T) {
	up := testutil.Upstream(t, framingUpstream())
	// A raw upstream for responses net/http cannot produce: read-until-close
	// bodies and 103 Early Hints.
	raw := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := testutil.ReadRequest(br)
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/until-close":
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
			c.Write(pattern(100000))
		case "/early-hints":
			fmt.Fprintf(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		}
	})
	p := gwtest.Start(t, config(1,
		route(`prefix = "/raw/"`, "raw", `prefix_rewrite = "/"`)+route(`prefix = "/"`, "up"),
		cluster("up", up.Addr), cluster("raw", raw.Addr)))
	base := "http://" + p.Addr("http")
	c := newClient(nil)

	t.Run("GET without body", func(t *testing.T) {
		resp, body := get(t, c, base+"/sink")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Seen-Length"); got != "0" {
			t.Errorf("upstream saw a body of %s bytes, want 0", got)
		}
		if got := resp.Header.Get("X-Seen-Transfer-Encoding"); got != "" {
			t.Errorf("upstream saw Transfer-Encoding %q, want none", got)
		}
	})

	t.Run("POST with Content-Length", func(t *testing.T) {
		body := pattern(300000)
		req, _ := http.NewRequest("POST", base+"/sink", bytes.NewReader(body))
		resp, rb := do(t, c, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, body %q", resp.StatusCode, rb)
		}
		if got := resp.Header.Get("X-Seen-Content-Length"); got != "300000" {
			t.Errorf("upstream saw Content-Length %s, want 300000", got)
		}
		if got := resp.Header.Get("X-Seen-Sha256"); got != sha(body) {
			t.Errorf("upstream saw a different body (sha256 %s, length %s)", got, resp.Header.Get("X-Seen-Length"))
		}
	})

	t.Run("POST chunked with trailers", func(t *testing.T) {
		body := pattern(250000)
		pr, pw := io.Pipe()
		go func() {
			for b := body; len(b) > 0; {
				k := min(len(b), 9000)
				pw.Write(b[:k])
				b = b[k:]
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", base+"/sink", pr)
		req.ContentLength = -1
		req.Trailer = http.Header{"X-Checksum": {"sum-" + sha(body)[:16]}}
		resp, rb := do(t, c, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, body %q", resp.StatusCode, rb)
		}
		if got := resp.Header.Get("X-Seen-Transfer-Encoding"); got != "chunked" {
			t.Errorf("upstream saw Transfer-Encoding %q, want chunked", got)
		}
		if got := resp.Header.Get("X-Seen-Sha256"); got != sha(body) {
			t.Errorf("upstream saw a different body (length %s)", resp.Header.Get("X-Seen-Length"))
		}
		if got, want := resp.Header.Get("X-Seen-Trailer"), "sum-"+sha(body)[:16]; got != want {
			t.Errorf("upstream saw trailer X-Checksum %q, want %q", got, want)
		}
	})

	t.Run("response with Content-Length", func(t *testing.T) {
		resp, body := get(t, c, base+"/fixed?n=200000")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if resp.ContentLength != 200000 {
			t.Errorf("Content-Length %d, want 200000", resp.ContentLength)
		}
		if !bytes.Equal(body, pattern(200000)) {
			t.Errorf("body differs (length %d)", len(body))
		}
	})

	t.Run("response chunked with trailers", func(t *testing.T) {
		resp, body := get(t, c, base+"/chunked?n=150000")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if resp.ContentLength != -1 {
			t.Errorf("Content-Length %d, want none (chunked)", resp.ContentLength)
		}
		if !bytes.Equal(body, pattern(150000)) {
			t.Errorf("body differs (length %d)", len(body))
		}
		if got := resp.Trailer.Get("X-Resp-Checksum"); got != sha(pattern(150000)) {
			t.Errorf("trailer X-Resp-Checksum %q, want the body's sha256", got)
		}
	})

	t.Run("response read until close", func(t *testing.T) {
		resp, body := get(t, c, base+"/raw/until-close")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if !bytes.Equal(body, pattern(100000)) {
			t.Errorf("body differs (length %d, want 100000)", len(body))
		}
	})

	t.Run("HEAD has headers but no body", func(t *testing.T) {
		// Over one raw connection: HEAD, then GET. Body bytes sent for
		// the HEAD would corrupt the GET's response.
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "HEAD /fixed?n=1234 HTTP/1.1\r\nHost: e2e\r\n\r\nGET /fixed?n=5 HTTP/1.1\r\nHost: e2e\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "HEAD")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "1234" || len(body) != 0 {
			t.Errorf("HEAD: status %d, Content-Length %q, %d body bytes; want 200, 1234, 0",
				resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
		}
		resp, body = readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "abcde" {
			t.Errorf("GET after HEAD: status %d, body %q; want 200, abcde", resp.StatusCode, body)
		}
	})

	for _, code := range []int{204, 304} {
		t.Run(fmt.Sprintf("%d has no body", code), func(t *testing.T) {
			conn := dial(t, p.Addr("http"))
			fmt.Fprintf(conn, "GET /status/%d HTTP/1.1\r\nHost: e2e\r\nIf-None-Match: \"v1\"\r\n\r\nGET /fixed?n=3 HTTP/1.1\r\nHost: e2e\r\n\r\n", code)
			br := bufio.NewReader(conn)
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != code || len(body) != 0 {
				t.Errorf("status %d with %d body bytes, want %d with none", resp.StatusCode, len(body), code)
			}
			if te := resp.Header.Get("Transfer-Encoding"); te != "" {
				t.Errorf("%d response carries Transfer-Encoding %q", code, te)
			}
			resp, body = readResponse(t, br, "GET")
			if resp.StatusCode != 200 || string(body) != "abc" {
				t.Errorf("next response on the connection: status %d, body %q; want 200, abc", resp.StatusCode, body)
			}
		})
	}

	t.Run("Expect 100-continue", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "POST /sink HTTP/1.1\r\nHost: e2e\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(conn)
		tp := textproto.NewReader(br)
		line, err := tp.ReadLine()
		if err != nil {
			t.Fatalf("waiting for 100 Continue: %v", err)
		}
		if line != "HTTP/1.1 100 Continue" {
			t.Fatalf("first line %q, want HTTP/1.1 100 Continue", line)
		}
		if _, err := tp.ReadMIMEHeader(); err != nil {
			t.Fatalf("100 Continue head: %v", err)
		}
		fmt.Fprintf(conn, "hello world")
		resp, body := readResponse(t, br, "POST")
		if resp.StatusCode != 200 {
			t.Fatalf("final status %d, body %q", resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Seen-Sha256"); got != sha([]byte("hello world")) {
			t.Errorf("upstream saw a different body (length %s)", resp.Header.Get("X-Seen-Length"))
		}
	})

	t.Run("103 Early Hints reach the client", func(t *testing.T) {
		var hints []string
		trace := &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			},
		}
		req, _ := http.NewRequest("GET", base+"/raw/early-hints", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, body := do(t, newClient(nil), req)
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("final response: status %d, body %q; want 200, ok", resp.StatusCode, body)
		}
		if want := "103 </style.css>; rel=preload"; len(hints) != 1 || hints[0] != want {
			t.Errorf("1xx responses seen: %q, want [%q]", hints, want)
		}
	})
}

// TestStreamedResponseReachesTheClientAsTheUpstreamFlushes has an upstream
// send a chunked response in two parts, the second only once the client
// has read the first (as a server-sent event stream does): the first part
// must not wait in the proxy for the second, over HTTP/1.1 and HTTP/2.
func TestStreamedResponseReachesTheClientAsTheUpstreamFlushes(t *testing.T) {
	release := make(chan struct{})
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	for _, client := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
		t.Run(client.name, func(t *testing.T) {
			resp, err := client.c.Get("http://" + p.Addr("http") + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, len("data: first\n\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: first\n\n" {
				t.Fatalf("first event %q, %v: it waited in the proxy for the rest of the body", first, err)
			}
			select {
			case release <- struct{}{}:
			case <-time.After(ioTimeout):
				t.Fatal("the upstream handler is not waiting to send the second event")
			}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "data: second\n\n" {
				t.Errorf("rest %q, %v; want the second event", rest, err)
			}
		})
	}
}

// TestStreamedRequestBodyReachesTheUpstreamAsTheClientSendsIt has a client
// send a chunked request body in two parts, the second only once the
// upstream has read the first: the first part must not wait in the proxy
// for more.
func TestStreamedRequestBodyReachesTheUpstreamAsTheClientSendsIt(t *testing.T) {
	gotFirst := make(chan string, 1)
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, len("part one;"))
		if _, err := io.ReadFull(r.Body, first); err != nil {
			gotFirst <- "error: " + err.Error()
			return
		}
		gotFirst <- string(first)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", first, rest)
	}))
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := newClient(nil).Post("http://"+p.Addr("http")+"/upload", "text/plain", pr)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{string(b), err}
	}()
	if _, err := io.WriteString(pw, "part one;"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-gotFirst:
		if got != "part one;" {
			t.Fatalf("the upstream read %q, want the first part", got)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the first part of the body did not reach the upstream: the proxy held it for more")
	}
	io.WriteString(pw, "part two")
	pw.Close()
	select {
	case r := <-done:
		if r.err != nil || r.body != "part one;part two" {
			t.Errorf("response %q, %v; want the whole body echoed", r.body, r.err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("no response")
	}
}
