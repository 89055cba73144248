package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h3ProxyWith starts sluice with h3Config (an HTTPS listener "https", which
// speaks HTTP/2 by ALPN, and an HTTP/3 listener "h3", on 127.0.0.1:0), the
// connection manager keys hcm in both chains, and the admin API; it returns
// the proxy, the CA its certificate chains to, and the admin address.
func h3ProxyWith(t *testing.T, h http.Handler, hcm ...string) (*gwtest.Proxy, *testutil.CA, string) {
	t.Helper()
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, h)
	cfg := h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr)
	const anchor = "    route_config = \"local\"\n"
	extra := ""
	for _, l := range hcm {
		extra += "    " + l + "\n"
	}
	cfg = strings.ReplaceAll(cfg, anchor, anchor+extra)
	cfg += "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	if admin == "" {
		t.Fatal("no admin API address logged")
	}
	return p, ca, admin
}

// adminCounters reads the counters of the admin API at addr.
func adminCounters(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + addr + "/stats?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("admin /stats: %v", err)
	}
	out := map[string]float64{}
	for _, s := range doc.Stats {
		var v float64
		if json.Unmarshal(s.Value, &v) == nil {
			out[s.Name] = v
		}
	}
	return out
}

// waitCounter polls the admin API until counter name reaches want.
func waitCounter(t *testing.T, admin, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		got := adminCounters(t, admin)[name]
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling the admin API, which has no wait
	}
}

// h2TLSClient speaks HTTP/2 over TLS (ALPN h2) trusting ca.
func h2TLSClient(ca *testutil.CA) *http.Client {
	return &http.Client{Timeout: ioTimeout, Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool, NextProtos: []string{"h2"}},
	}}
}

// h3TimeoutClient is h3Client with a timeout of ioTimeout per request.
func h3TimeoutClient(t *testing.T, ca *testutil.CA) *http.Client {
	c := h3Client(t, ca)
	c.Timeout = ioTimeout
	return c
}

// bodyResult is how an upstream's read of a request body ended.
type bodyResult struct {
	path string
	n    int
	err  error
}

// TestStreamIdleTimeoutEndsStalledHTTP2AndHTTP3RequestBodies sends, over
// HTTP/2 and over HTTP/3, a request head and part of its body and then
// stalls: after stream_idle_timeout sluice answers 408 (flag SI in the
// access log, downstream_rq_4xx counted) and the upstream never gets the
// whole body. A body that keeps arriving more slowly than the timeout in
// total, but with gaps shorter than it, is not cut.
func TestStreamIdleTimeoutEndsStalledHTTP2AndHTTP3RequestBodies(t *testing.T) {
	const timeout = 300 * time.Millisecond
	results := make(chan bodyResult, 16)
	logPath := filepath.Join(t.TempDir(), "access.log")
	p, ca, admin := h3ProxyWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		results <- bodyResult{r.URL.Path, int(n), err}
		fmt.Fprintf(w, "got %d", n)
	}),
		fmt.Sprintf("stream_idle_timeout = %q", timeout),
		`[[listener.filter_chain.filter.config.access_log]]`,
		fmt.Sprintf("path = %q", logPath),
		`json_format = { code = "%RESPONSE_CODE%", flags = "%RESPONSE_FLAGS%", path = "%REQ(:PATH)%", proto = "%PROTOCOL%" }`)
	clients := []struct {
		name, url, stat string
		c               *http.Client
	}{
		{"HTTP/2", "https://" + p.Addr("https"), "http.ingress_https.", h2TLSClient(ca)},
		{"HTTP/3", "https://" + p.Addr("h3"), "http.ingress_h3.", h3TimeoutClient(t, ca)},
	}
	// The router may hold a small body before it connects (for retries):
	// a stalled request's body may never reach the upstream at all. Results
	// of other requests met while waiting for one are kept for the end.
	var seen []bodyResult
	upstreamResult := func(t *testing.T, path string) bodyResult {
		t.Helper()
		deadline := time.After(ioTimeout)
		for {
			select {
			case r := <-results:
				if r.path == path {
					return r
				}
				seen = append(seen, r)
			case <-deadline:
				t.Fatalf("the upstream did not see %s end", path)
				return bodyResult{}
			}
		}
	}
	for _, cl := range clients {
		t.Run(cl.name+" stalled body", func(t *testing.T) {
			path := "/stall-" + cl.name[5:]
			pr, pw := io.Pipe()
			defer pw.Close()
			go pw.Write([]byte("part of a body"))
			req, _ := http.NewRequest("POST", cl.url+path, pr)
			start := time.Now()
			resp, err := cl.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			elapsed := time.Since(start)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "stream_idle_timeout") {
				t.Fatalf("status %d, body %q; want 408 stream_idle_timeout", resp.StatusCode, body)
			}
			if elapsed < timeout {
				t.Errorf("408 after %v, before stream_idle_timeout %v", elapsed, timeout)
			}
		})
		t.Run(cl.name+" slow body is not cut", func(t *testing.T) {
			path := "/slow-" + cl.name[5:]
			chunk := bytes.Repeat([]byte("s"), 1000)
			const chunks = 8 // 8 gaps of timeout/3: over twice the timeout in all
			pr, pw := io.Pipe()
			go func() {
				for range chunks {
					if _, err := pw.Write(chunk); err != nil {
						return
					}
					time.Sleep(timeout / 3) // the pace of the body under test
				}
				pw.Close()
			}()
			defer pr.Close()
			req, _ := http.NewRequest("POST", cl.url+path, pr)
			start := time.Now()
			resp, err := cl.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := fmt.Sprintf("got %d", chunks*len(chunk))
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("status %d, body %q; want 200 %q", resp.StatusCode, body, want)
			}
			if elapsed := time.Since(start); elapsed < 2*timeout {
				t.Fatalf("the body took %v, not longer than stream_idle_timeout: the test proves nothing", elapsed)
			}
			if r := upstreamResult(t, path); r.err != nil || r.n != chunks*len(chunk) {
				t.Errorf("upstream read %d bytes (%v), want %d", r.n, r.err, chunks*len(chunk))
			}
		})
	}

	var lines []map[string]string
	deadline := time.Now().Add(ioTimeout)
	for len(lines) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want 4", len(lines))
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		lines = readJSONLines(t, logPath)
	}
	for _, l := range lines {
		stalled := strings.HasPrefix(l["path"], "/stall-")
		if stalled && (l["code"] != "408" || l["flags"] != "SI") {
			t.Errorf("access log line %v: want code 408, flags SI", l)
		}
		if !stalled && (l["code"] != "200" || strings.Contains(l["flags"], "SI")) {
			t.Errorf("access log line %v: want code 200 without SI", l)
		}
	}
	for drained := false; !drained; {
		select {
		case r := <-results:
			seen = append(seen, r)
		default:
			drained = true
		}
	}
	for _, r := range seen {
		if strings.HasPrefix(r.path, "/stall-") && r.err == nil {
			t.Errorf("the upstream read a complete body of %d bytes from the stalled request %s", r.n, r.path)
		}
	}
	for _, cl := range clients {
		waitCounter(t, admin, cl.stat+"downstream_rq_4xx", 1)
	}
}

// TestHTTP3MaxConnectionDurationSendsGoaway checks max_connection_duration
// on HTTP/3: before it, requests share one connection; after it, the
// connection gets GOAWAY (downstream_cx_max_duration_reached counts it), a
// request then goes on a new connection while the request in flight on the
// old one completes, and the old connection closes gracefully once that
// request is done.
func TestHTTP3MaxConnectionDurationSendsGoaway(t *testing.T) {
	const maxDur = time.Second
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	p, ca, admin := h3ProxyWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}), fmt.Sprintf("max_connection_duration = %q", maxDur))
	var dials atomic.Int32
	conns := make(chan *quic.Conn, 4)
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool},
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			dials.Add(1)
			c, err := quic.DialAddrEarly(ctx, addr, tlsCfg, cfg)
			if err == nil {
				conns <- c
			}
			return c, err
		},
	}
	t.Cleanup(func() { tr.Close() })
	c := &http.Client{Transport: tr, Timeout: ioTimeout}
	url := "https://" + p.Addr("h3")
	get := func(path string) (int, string, error) {
		resp, err := c.Get(url + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	start := time.Now()
	if code, body, err := get("/first"); err != nil || code != 200 || body != "done /first" {
		t.Fatalf("first request: %d %q %v", code, body, err)
	}
	first := gwtest.Recv(t, conns, "upstream connection")
	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		code, body, err := get("/slow")
		slow <- result{code, body, err}
	}()
	gwtest.Recv(t, arrived, "request at the upstream")
	if elapsed := time.Since(start); elapsed >= maxDur {
		t.Fatalf("two requests took %v, longer than max_connection_duration %v", elapsed, maxDur)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections before max_connection_duration, want 1", n)
	}
	name := "http.ingress_h3.downstream_cx_max_duration_reached"
	waitCounter(t, admin, name, 1)
	if elapsed := time.Since(start); elapsed < maxDur {
		t.Fatalf("%s counted after %v, before %v", name, elapsed, maxDur)
	}
	// The old connection is still open (a request is in flight on it) but
	// in GOAWAY: a new request must go on a new connection.
	if code, body, err := get("/after"); err != nil || code != 200 || body != "done /after" {
		t.Fatalf("request after max_connection_duration: %d %q %v", code, body, err)
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections after max_connection_duration, want 2", n)
	}
	if first.Context().Err() != nil {
		t.Fatalf("the first connection closed with a request in flight: %v", context.Cause(first.Context()))
	}
	close(release)
	if r := gwtest.Recv(t, slow, "answer to the slow request"); r.err != nil || r.code != 200 || r.body != "done /slow" {
		t.Fatalf("request in flight at max_connection_duration: %d %q %v, want 200 \"done /slow\"", r.code, r.body, r.err)
	}
	select {
	case <-first.Context().Done():
		var ae *quic.ApplicationError
		if err := context.Cause(first.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(http3.ErrCodeNoError) {
			t.Fatalf("the first connection closed with %v, want H3_NO_ERROR", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the connection in GOAWAY did not close after its last stream")
	}
}
