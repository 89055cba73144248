package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// upstreamChaosCase is one way an HTTP/1.1 upstream misbehaves. serve
// answers the request (already read, body included unless keepBody) on c.
// The client sends method to /chaos/<index>; want lists the acceptable
// statuses, upe that the answer must name flag UPE, body the exact body
// expected (when set), short that a 200 may be cut short (the client must
// then see an error, never a clean end).
type upstreamChaosCase struct {
	name     string
	method   string
	reqBody  int // bytes of request body the client sends (POST)
	keepBody bool
	serve    func(c net.Conn)
	want     []int
	upe      bool
	body     string
	short    bool
	answered chan struct{} // closed once the client has its response
}

func upstreamChaosCases() []upstreamChaosCase {
	answered := []chan struct{}{make(chan struct{}), make(chan struct{})}
	stall := func(s string, a <-chan struct{}) func(net.Conn) {
		return func(c net.Conn) {
			io.WriteString(c, s)
			select {
			case <-a:
			case <-time.After(2 * ioTimeout):
			}
		}
	}
	write := func(s string) func(net.Conn) { return func(c net.Conn) { io.WriteString(c, s) } }
	writeClose := func(s string) func(net.Conn) { return func(c net.Conn) { io.WriteString(c, s); c.Close() } }
	bigHead := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 100) + "Content-Length: 2\r\n\r\nok"
	flood := func(line string) func(net.Conn) {
		return func(c net.Conn) {
			c.SetWriteDeadline(time.Now().Add(2 * ioTimeout))
			for {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		}
	}
	return []upstreamChaosCase{
		{name: "head split byte by byte", serve: func(c net.Conn) {
			for _, b := range []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(time.Millisecond) // the misbehaviour: one byte per segment
			}
		}, want: []int{200}, body: "ok"},
		{name: "head larger than the limit", serve: write(bigHead), want: []int{502}, upe: true},
		{name: "100 Continue flood then 200", serve: write(strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 2000) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
			want: []int{200, 502}},
		{name: "endless 100 Continue", serve: flood("HTTP/1.1 100 Continue\r\n\r\n"), want: []int{502}, upe: true},
		{name: "endless 103 Early Hints", serve: flood("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"), want: []int{502}, upe: true},
		{name: "101 without an upgrade request", serve: write("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), want: []int{502}, upe: true},
		{name: "204 with a body", serve: write("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nspoof!"), want: []int{204}, body: ""},
		{name: "204 with Content-Length and a body", serve: write("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"), want: []int{204}, body: ""},
		{name: "304 with Content-Length and a body", serve: write("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello"), want: []int{304}, body: ""},
		{name: "HEAD answered with a body", method: "HEAD", serve: write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), want: []int{200}, body: ""},
		{name: "Content-Length shorter than the body then close", serve: writeClose("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"), want: []int{200}, body: "ok"},
		{name: "Content-Length longer than the body then close", serve: writeClose("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok"), want: []int{200, 502, 503}, short: true},
		{name: "chunk size not hex", serve: write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"), want: []int{200, 502}, short: true},
		{name: "chunk size overflowing", serve: write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1ffffffffffffffff\r\n"), want: []int{200, 502}, short: true},
		{name: "chunk size negative", serve: write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n-1\r\n"), want: []int{200, 502}, short: true},
		{name: "last chunk without the final CRLF then close", serve: writeClose("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"), want: []int{200, 502, 503}, short: true},
		{name: "oversize trailers", serve: write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" +
			strings.Repeat("X-T: "+strings.Repeat("t", 1000)+"\r\n", 100) + "\r\n"), want: []int{200, 502}, short: true},
		{name: "early 413 before the request body then close", method: "POST", reqBody: 4 << 20, keepBody: true,
			serve: write("HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig"), want: []int{413}, body: "big"},
		// The upstream neither reads the rest nor closes until the
		// client has the 413.
		{name: "early 413 kept alive, the request body left unread", method: "POST", reqBody: 256 << 10, keepBody: true,
			serve: stall("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig", answered[0]), want: []int{413}, body: "big", answered: answered[0]},
		{name: "early 413 kept alive, a body beyond the socket buffers left unread", method: "POST", reqBody: 48 << 20, keepBody: true,
			serve: stall("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig", answered[1]), want: []int{413}, body: "big", answered: answered[1]},
		{name: "garbage after the response in one write", serve: write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nspoof!"), want: []int{200}, body: "ok"},
		{name: "Content-Length repeated with the same value", serve: write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"), want: []int{502}, upe: true},
		{name: "Content-Length negative", serve: write("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok"), want: []int{502}, upe: true},
		{name: "Content-Length overflowing", serve: write("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok"), want: []int{502}, upe: true},
		{name: "status 999", serve: write("HTTP/1.1 999 Nine\r\nContent-Length: 2\r\n\r\nok"), want: []int{502}, upe: true},
		{name: "status 20", serve: write("HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"), want: []int{502}, upe: true},
		{name: "HTTP/2.0 status line", serve: write("HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), want: []int{502}, upe: true},
	}
}

// TestHTTP1UpstreamMisbehaviourGetsAClearAnswer runs one HTTP/1.1 upstream
// misbehaviour per case against sluice (one worker) with a raw client, and
// after each checks that a well-behaved request through the same worker
// gets its own answer: nothing the misbehaving upstream sent stays in a
// pooled connection to be read as the next request's response.
func TestHTTP1UpstreamMisbehaviourGetsAClearAnswer(t *testing.T) {
	cases := upstreamChaosCases()
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			i, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/chaos/"))
			if err != nil {
				io.Copy(io.Discard, req.Body)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
				continue
			}
			if !cases[i].keepBody {
				io.Copy(io.Discard, req.Body)
			}
			cases[i].serve(c)
			if cases[i].keepBody {
				return
			}
			// the connection stays open: what the case wrote after its
			// response must be discarded by sluice, not read later
		}
	})
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	addr := p.Addr("http")
	client := newClient(nil)

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			c := dial(t, addr)
			head := fmt.Sprintf("%s /chaos/%d HTTP/1.1\r\nHost: e2e\r\n", method, i)
			if tc.reqBody > 0 {
				head += fmt.Sprintf("Content-Length: %d\r\n", tc.reqBody)
			}
			writeAsync(c, append([]byte(head+"\r\n"), make([]byte, tc.reqBody)...))
			br := bufio.NewReader(c)
			var resp *http.Response
			for informational := 0; resp == nil || resp.StatusCode < 200; informational++ {
				if informational > 5000 {
					t.Fatalf("more than %d informational responses", informational)
				}
				var err error
				if resp, err = http.ReadResponse(br, &http.Request{Method: method}); err != nil {
					t.Fatalf("no response: %v", err)
				}
			}
			body, berr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.answered != nil {
				close(tc.answered)
			}
			if !slices.Contains(tc.want, resp.StatusCode) {
				t.Errorf("status %d, body %q; want one of %v", resp.StatusCode, body, tc.want)
			}
			if tc.upe && !hasFlag(resp, body, "UPE") {
				t.Errorf("status %d, body %q; want flag UPE named", resp.StatusCode, body)
			}
			if tc.short && resp.StatusCode == 200 && berr == nil {
				t.Errorf("truncated upstream response reached the client as a clean %d-byte body %q", len(body), body)
			} else if !tc.short && berr != nil {
				t.Errorf("reading the body: %v", berr)
			}
			if tc.body != "" || slices.Contains([]int{204, 304}, resp.StatusCode) || method == "HEAD" {
				if string(body) != tc.body {
					t.Errorf("body %q, want %q", body, tc.body)
				}
			}
			c.Close()

			// A good request through the same worker gets its own answer.
			for j := range 3 {
				path := fmt.Sprintf("/after/%d/%d", i, j)
				r, b := get(t, client, "http://"+addr+path)
				if r.StatusCode != 200 || string(b) != path {
					t.Fatalf("request after the case: status %d, body %q; want 200, %q", r.StatusCode, b, path)
				}
			}
		})
	}
}

// TestHTTP1UpstreamBytesAfterTheResponseDiscardTheConnection: an upstream
// that sends more bytes on a keep-alive connection after a complete
// response (a second, unrequested response) must not have them read as the
// response to the next request sent on that connection.
func TestHTTP1UpstreamBytesAfterTheResponseDiscardTheConnection(t *testing.T) {
	var mu sync.Mutex
	spoofed := make(chan struct{}, 1)
	up := testutil.RawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := testutil.ReadRequest(br)
			if err != nil {
				return
			}
			mu.Lock()
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
			if req.URL.Path == "/first" {
				// a separate segment, after sluice has the response
				time.Sleep(50 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nspoof!")
				spoofed <- struct{}{}
			}
			mu.Unlock()
		}
	})
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	client := newClient(nil)
	base := "http://" + p.Addr("http")
	if r, b := get(t, client, base+"/first"); r.StatusCode != 200 || string(b) != "/first" {
		t.Fatalf("first: status %d, body %q", r.StatusCode, b)
	}
	select {
	case <-spoofed:
	case <-time.After(ioTimeout):
		t.Fatal("upstream did not send its unrequested response")
	}
	r, b := get(t, client, base+"/second")
	if r.StatusCode != 200 || string(b) != "/second" {
		t.Fatalf("second: status %d, body %q; want 200, /second (the stale response must not be its answer)", r.StatusCode, b)
	}
}
