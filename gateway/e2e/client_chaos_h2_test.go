package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestHTTP2MalformedRequestNeverReachesTheUpstreamComplete sends HTTP/2
// requests that are malformed (RFC 9113 §8.1.1, §8.1, §8.2.2) in ways only
// found after their head went upstream, or in their head: the client's
// stream is reset (or answered 400) and the upstream never gets a complete
// request, through an HTTP/1.1 and an HTTP/2 upstream.
func TestHTTP2MalformedRequestNeverReachesTheUpstreamComplete(t *testing.T) {
	var mu sync.Mutex
	var complete []string // "path body" of every request the upstream read whole
	record := func(r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		mu.Lock()
		complete = append(complete, r.URL.Path+" "+string(body))
		mu.Unlock()
	}
	h1 := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { record(r) }))
	h2, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { record(r) }), false)
	routes := route(`prefix = "/h1/"`, "h1") + route(`prefix = "/h2/"`, "h2")
	p := gwtest.Start(t, config(1, routes, cluster("h1", h1.Addr), h2Cluster("h2", h2)))
	addr := p.Addr("http")

	post := func(path string, extra ...[2]string) [][2]string {
		return append([][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", path}}, extra...)
	}
	cases := []struct {
		name     string
		head     func(path string) [][2]string
		body     string
		trailers [][2]string
	}{
		{name: "content-length above the DATA", head: func(p string) [][2]string { return post(p, [2]string{"content-length", "10"}) }, body: "hello"},
		{name: "content-length below the DATA", head: func(p string) [][2]string { return post(p, [2]string{"content-length", "2"}) }, body: "hello"},
		{name: "content-length with trailers short", head: func(p string) [][2]string { return post(p, [2]string{"content-length", "10"}) },
			body: "hello", trailers: [][2]string{{"x-t", "1"}}},
		{name: "pseudo-header in trailers", head: func(p string) [][2]string { return post(p) }, body: "hello",
			trailers: [][2]string{{":path", "/other"}}},
		{name: "te gzip", head: func(p string) [][2]string { return post(p, [2]string{"te", "gzip"}) }, body: "hello"},
		{name: "te trailers, gzip", head: func(p string) [][2]string { return post(p, [2]string{"te", "trailers, gzip"}) }, body: "hello"},
		{name: "connection field", head: func(p string) [][2]string { return post(p, [2]string{"connection", "keep-alive"}) }, body: "hello"},
	}
	for _, up := range []string{"h1", "h2"} {
		for i, tc := range cases {
			t.Run(up+" upstream, "+tc.name, func(t *testing.T) {
				path := fmt.Sprintf("/%s/bad/%d", up, i)
				r := rawH2Exchange(t, addr, tc.head(path), tc.body, tc.trailers)
				st := statusOf(r.head)
				if !r.reset && !strings.HasPrefix(st, "4") {
					t.Errorf("status %q, body %q; want the stream reset or a 4xx", st, r.body)
				}
				if r.reset && r.code != http2.ErrCodeProtocol {
					t.Errorf("stream reset with %v, want PROTOCOL_ERROR", r.code)
				}
				// A good request after it: once answered, the upstream has
				// seen all it will of the malformed one.
				good := fmt.Sprintf("/%s/good/%d", up, i)
				if g := rawH2Exchange(t, addr, post(good), "fine", nil); statusOf(g.head) != "200" {
					t.Fatalf("good request: status %q, reset %v", statusOf(g.head), g.reset)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, c := range complete {
					if strings.HasPrefix(c, path+" ") {
						t.Errorf("the upstream got a complete request: %q", c)
					}
				}
			})
		}
	}
}

// TestForbiddenResponseTrailerFieldsAreNotPassedOn: an HTTP/1.1 upstream's
// chunked trailers with fields a trailer section must not carry
// (content-length, transfer-encoding, host; RFC 9110 §6.5.1) never reach an
// HTTP/2 client as trailers, where a connection-specific one would make the
// response malformed; the allowed field next to them goes through.
func TestForbiddenResponseTrailerFieldsAreNotPassedOn(t *testing.T) {
	up := testutil.RawUpstream(t, func(c net.Conn) {
		if _, err := testutil.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n2\r\nok\r\n0\r\n"+
			"Content-Length: 99\r\nTransfer-Encoding: chunked\r\nHost: evil.example\r\nConnection: close\r\nX-Checksum: abc\r\n\r\n")
	})
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	r := rawH2Exchange(t, p.Addr("http"), [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}, {"te", "trailers"}}, "", nil)
	if r.reset || statusOf(r.head) != "200" || string(r.body) != "ok" {
		t.Fatalf("status %q, body %q, reset %v (%v); want 200 ok", statusOf(r.head), r.body, r.reset, r.code)
	}
	var got []string
	for _, f := range r.trailers {
		switch f.Name {
		case "content-length", "transfer-encoding", "host", "connection":
			t.Errorf("trailer field %s: %q reached the client", f.Name, f.Value)
		}
		got = append(got, f.Name+": "+f.Value)
	}
	if len(got) != 1 || got[0] != "x-checksum: abc" {
		t.Errorf("trailers %q, want x-checksum: abc only", got)
	}
}
