package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// malformedCase is one class of invalid request. req is a format with one
// %s, the request target; body marks errors found only in the body, after a
// valid head (the upstream may then see the head of the request, but never
// a complete one).
type malformedCase struct {
	name string
	req  string
	want []int
	body bool
}

func malformedCases() []malformedCase {
	var manyHeaders, bigHead strings.Builder
	for i := range 150 {
		fmt.Fprintf(&manyHeaders, "X-N-%d: v\r\n", i)
	}
	for i := range 70 {
		fmt.Fprintf(&bigHead, "X-Pad-%d: %s\r\n", i, strings.Repeat("b", 1000))
	}
	const host = "Host: e2e\r\n"
	return []malformedCase{
		{name: "Content-Length and Transfer-Encoding", req: "POST %s HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: []int{400}},
		{name: "Content-Length repeated", req: "POST %s HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", want: []int{400}},
		{name: "Content-Length differing", req: "POST %s HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", want: []int{400}},
		{name: "Content-Length list", req: "POST %s HTTP/1.1\r\n" + host + "Content-Length: 5, 6\r\n\r\nhello!", want: []int{400}},
		{name: "Content-Length non-numeric", req: "POST %s HTTP/1.1\r\n" + host + "Content-Length: abc\r\n\r\nhello", want: []int{400}},
		{name: "Content-Length signed", req: "POST %s HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", want: []int{400}},
		{name: "Transfer-Encoding gzip", req: "POST %s HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\nhello", want: []int{501}},
		{name: "Transfer-Encoding chunked then gzip", req: "POST %s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: []int{400, 501}},
		{name: "invalid chunk size", req: "POST %s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", want: []int{400}, body: true},
		{name: "overflowing chunk size", req: "POST %s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n", want: []int{400}, body: true},
		{name: "chunk data not followed by CRLF", req: "POST %s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", want: []int{400}, body: true},
		{name: "bare CR in head", req: "GET %s HTTP/1.1\r\n" + host + "X-A: 1\rX-B: 2\r\n\r\n", want: []int{400}},
		{name: "bare LF line endings", req: "GET %s HTTP/1.1\nHost: e2e\n\n", want: []int{400}},
		{name: "obs-fold", req: "GET %s HTTP/1.1\r\n" + host + "X-Folded: a\r\n  b\r\n\r\n", want: []int{400}},
		{name: "space before colon", req: "GET %s HTTP/1.1\r\n" + host + "X-Space : a\r\n\r\n", want: []int{400}},
		{name: "non-token header name", req: "GET %s HTTP/1.1\r\n" + host + "X{a}: b\r\n\r\n", want: []int{400}},
		{name: "NUL in header value", req: "GET %s HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", want: []int{400}},
		{name: "CTL in header value", req: "GET %s HTTP/1.1\r\n" + host + "X-A: a\x01b\r\n\r\n", want: []int{400}},
		{name: "CR in header value", req: "GET %s HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n", want: []int{400}},
		{name: "missing Host in HTTP/1.1", req: "GET %s HTTP/1.1\r\nX-A: b\r\n\r\n", want: []int{400}},
		{name: "two Host headers", req: "GET %s HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", want: []int{400}},
		{name: "Transfer-Encoding in HTTP/1.0", req: "POST %s HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: []int{400}},
		{name: "invalid method", req: "G@T %s HTTP/1.1\r\n" + host + "\r\n", want: []int{400}},
		{name: "HTTP/2.0 version", req: "GET %s HTTP/2.0\r\n" + host + "\r\n", want: []int{505}},
		{name: "garbage version", req: "GET %s HTPT/1.1\r\n" + host + "\r\n", want: []int{400}},
		{name: "oversize request line", req: "GET %s" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\n" + host + "\r\n", want: []int{414}},
		{name: "oversize head", req: "GET %s HTTP/1.1\r\n" + host + bigHead.String() + "\r\n", want: []int{431}},
		{name: "too many headers", req: "GET %s HTTP/1.1\r\n" + host + manyHeaders.String() + "\r\n", want: []int{431}},
	}
}

// TestMalformedRequestsRejectedBeforeUpstream sends one invalid request per
// class over raw TCP and checks that sluice answers with the right status,
// closes the connection, and forwards nothing to the upstream.
func TestMalformedRequestsRejectedBeforeUpstream(t *testing.T) {
	var mu sync.Mutex
	var complete []string // targets whose whole body the upstream read
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		mu.Lock()
		complete = append(complete, r.RequestURI)
		mu.Unlock()
		fmt.Fprintf(w, "ok %s", r.RequestURI)
	}))
	// One worker, so the valid request that follows each case is served by
	// the same process as the invalid one.
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	addr := p.Addr("http")
	client := newClient(nil)

	for i, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			target := fmt.Sprintf("/bad/%d/", i)
			conn := dial(t, addr)
			writeAsync(conn, []byte(fmt.Sprintf(tc.req, target)))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !slices.Contains(tc.want, resp.StatusCode) {
				t.Errorf("status %d, want one of %v", resp.StatusCode, tc.want)
			}
			assertClosed(t, conn, br)

			// A valid request on a new connection, proxied after the
			// invalid one was answered: once it is through, the upstream
			// has seen everything it would ever see of the invalid one.
			valid := fmt.Sprintf("/valid/%d", i)
			vr, body := get(t, client, "http://"+addr+valid)
			if vr.StatusCode != 200 || string(body) != "ok "+valid {
				t.Fatalf("valid request after the invalid one: status %d, body %q", vr.StatusCode, body)
			}
			if tc.body {
				mu.Lock()
				defer mu.Unlock()
				for _, got := range complete {
					if strings.HasPrefix(got, target) {
						t.Errorf("upstream received a complete request %q", got)
					}
				}
				return
			}
			for _, got := range up.Targets() {
				if strings.HasPrefix(got, target) {
					t.Errorf("upstream received request %q", got)
				}
			}
		})
	}
}
