package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestRequestTimeout checks request_timeout = "300ms" (stream_idle_timeout
// stays 5m): a request whose body stops coming gets 408 with details
// request_overall_timeout, on HTTP/1.1 (then the connection closes) and
// HTTP/2, counted in downstream_rq_timeout; a request whose body trickles
// in, a byte every 50 ms, is cut off too (the whole request is bounded, not
// the gaps); a prompt request is served.
func TestRequestTimeout(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d", len(b))
	}))
	p := gwtest.Start(t, h2Config(`request_timeout = "300ms"`, route(`prefix = "/"`, "up"), cluster("up", up.Addr))+
		"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	// Prompt: served.
	c := dial(t, p.Addr("http"))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	if resp, body := readResponse(t, br, "POST"); resp.StatusCode != 200 || string(body) != "got 3" {
		t.Fatalf("prompt request: %d %q", resp.StatusCode, body)
	}

	// Stalled body, HTTP/1.1.
	start := time.Now()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	resp, body := readResponse(t, br, "POST")
	if resp.StatusCode != 408 || !strings.Contains(string(body), "request_overall_timeout") {
		t.Errorf("stalled HTTP/1.1 body: %d %q, want 408 request_overall_timeout", resp.StatusCode, body)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("408 after %v, before request_timeout", el)
	}
	assertClosed(t, c, br)

	// Trickling body, HTTP/1.1: bytes keep moving, the request is late.
	c2 := dial(t, p.Addr("http"))
	br2 := bufio.NewReader(c2)
	fmt.Fprintf(c2, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range 100 {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c2.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	resp, body = readResponse(t, br2, "POST")
	if resp.StatusCode != 408 || !strings.Contains(string(body), "request_overall_timeout") {
		t.Errorf("trickling HTTP/1.1 body: %d %q, want 408 request_overall_timeout", resp.StatusCode, body)
	}

	// Stalled body, HTTP/2: the stream gets the 408, the body pipe stays open.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("ab"))
	req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/", pr)
	req.ContentLength = 10
	resp, body = do(t, h2cClient(nil), req)
	if resp.ProtoMajor != 2 || resp.StatusCode != 408 || !strings.Contains(string(body), "request_overall_timeout") {
		t.Errorf("stalled HTTP/2 body: %s %d %q, want 408 request_overall_timeout", resp.Proto, resp.StatusCode, body)
	}
	waitCounter(t, admin, "http.ingress_http.downstream_rq_timeout", 3)
}

// TestRequestTimeoutHTTP3 checks request_timeout on an HTTP/3 stream whose
// body stops coming: 408 request_overall_timeout.
func TestRequestTimeoutHTTP3(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	cfg := strings.ReplaceAll(h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr),
		`route_config = "local"`, "route_config = \"local\"\n    request_timeout = \"300ms\"")
	p := gwtest.Start(t, cfg)
	h3 := h3Client(t, ca)
	h3.Timeout = ioTimeout
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("ab"))
	req, _ := http.NewRequest("POST", "https://"+p.Addr("h3")+"/", pr)
	req.ContentLength = 10
	resp, body := do(t, h3, req)
	if resp.ProtoMajor != 3 || resp.StatusCode != 408 || !strings.Contains(string(body), "request_overall_timeout") {
		t.Errorf("stalled HTTP/3 body: %s %d %q, want 408 request_overall_timeout", resp.Proto, resp.StatusCode, body)
	}
}
