package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// Retries, timeouts and mirroring with HTTP/2 upstreams (protocol "http2"):
// the same policies as over HTTP/1, on the multiplexed pool.

// h2Host is an h2c upstream that counts requests and answers with status
// (200 when zero), naming itself and echoing the request body.
type h2Host struct {
	addr   string
	served atomic.Int64
	status atomic.Int64
}

func newH2Host(t *testing.T, name string) *h2Host {
	h := &h2Host{}
	h.addr, _ = h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.served.Add(1)
		body, _ := io.ReadAll(r.Body)
		if st := h.status.Load(); st != 0 {
			w.WriteHeader(int(st))
		}
		fmt.Fprintf(w, "%s %s %s %q", name, r.Proto, r.Method, body)
	}), false)
	return h
}

// refusingH2Upstream is an h2c upstream that answers every stream with
// RST_STREAM(REFUSED_STREAM), as a server over its concurrency limit does.
// It counts the streams it refused.
func refusingH2Upstream(t *testing.T, refused *atomic.Int64) string {
	ln := testutil.ListenTCP(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				if fr.WriteSettings() != nil {
					return
				}
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.HeadersFrame:
						refused.Add(1)
						fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String()
}

// h2Cluster is a static cluster speaking HTTP/2 (h2c) to its endpoints.
func h2Cluster(name string, endpoints ...string) string {
	return cluster(name, endpoints...) + "protocol = \"http2\"\n"
}

func TestHTTP2UpstreamRetries5xxOnAnotherHostWithTheBody(t *testing.T) {
	bad, good := newH2Host(t, "bad"), newH2Host(t, "good")
	bad.status.Store(503)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up",
		`retry_policy = { retry_on = ["5xx"], num_retries = 2, retry_host_predicate = ["previous_hosts"] }`),
		h2Cluster("up", bad.addr, good.addr)))
	url := "http://" + p.Addr("http") + "/"
	for i := range 6 {
		body := fmt.Sprintf("payload-%d", i)
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		resp, got := do(t, newClient(nil), req)
		if want := fmt.Sprintf("good HTTP/2.0 POST %q", body); resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("POST %d: %d %q, want 200 %q", i, resp.StatusCode, got, want)
		}
		if resp.Header.Get("x-envoy-upstream-service-time") == "" {
			t.Errorf("no x-envoy-upstream-service-time on an HTTP/2 upstream's response")
		}
	}
	if bad.served.Load() == 0 {
		t.Fatal("the failing host was never tried: the test proves nothing")
	}
	// With the retries used up the last 503 goes to the client.
	good.status.Store(503)
	resp, _ := get(t, newClient(nil), url)
	if resp.StatusCode != 503 {
		t.Fatalf("both hosts failing: %d, want the upstream's 503", resp.StatusCode)
	}
}

func TestHTTP2UpstreamRefusedStreamIsRetriedOnlyWhenAsked(t *testing.T) {
	var refused atomic.Int64
	ref := refusingH2Upstream(t, &refused)
	good := newH2Host(t, "good")
	cfg := config(1,
		route(`prefix = "/refused"`, "up", `retry_policy = { retry_on = ["refused-stream"], num_retries = 1, retry_host_predicate = ["previous_hosts"] }`)+
			route(`prefix = "/other"`, "up", `retry_policy = { retry_on = ["retriable-4xx"], num_retries = 1, retry_host_predicate = ["previous_hosts"] }`),
		h2Cluster("up", ref, good.addr)+"lb_policy = \"round_robin\"\n")
	p := gwtest.Start(t, cfg)
	c := newClient(nil)
	for range 4 {
		resp, body := get(t, c, "http://"+p.Addr("http")+"/refused")
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "good ") {
			t.Fatalf("retry_on refused-stream: %d %q, want 200 from the good host", resp.StatusCode, body)
		}
	}
	if refused.Load() == 0 {
		t.Fatal("no stream was refused: the test proves nothing")
	}
	// A route that does not retry refused streams answers 503 when the
	// refusing host is picked (round robin picks it every other time).
	saw503 := false
	for range 4 {
		resp, body := get(t, c, "http://"+p.Addr("http")+"/other")
		switch {
		case resp.StatusCode == 503 && strings.Contains(string(body), "remote_reset"):
			saw503 = true
		case resp.StatusCode != 200:
			t.Fatalf("retry_on retriable-4xx: %d %q", resp.StatusCode, body)
		}
	}
	if !saw503 {
		t.Fatal("a refused stream was retried by a policy without refused-stream")
	}
}

func TestHTTP2UpstreamPerTryTimeoutRetriesAHangingHost(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var hung atomic.Int64
	hang, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), false)
	good := newH2Host(t, "good")
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up",
		`retry_policy = { retry_on = ["5xx"], num_retries = 1, per_try_timeout = "200ms", retry_host_predicate = ["previous_hosts"] }`),
		h2Cluster("up", hang, good.addr)))
	for range 4 {
		resp, body := get(t, newClient(nil), "http://"+p.Addr("http")+"/")
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "good ") {
			t.Fatalf("%d %q, want 200 from the good host after the per-try timeout", resp.StatusCode, body)
		}
	}
	if hung.Load() == 0 {
		t.Fatal("the hanging host was never tried: the test proves nothing")
	}
}

func TestHTTP2UpstreamStreamIdleTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall-body" {
			w.WriteHeader(200)
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), false)
	logPath := t.TempDir() + "/access.log"
	p := gwtest.Start(t, streamIdleConfig(up, logPath)+"protocol = \"http2\"\n")

	start := time.Now()
	resp, body := get(t, newClient(nil), "http://"+p.Addr("http")+"/silent")
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "stream_idle_timeout") {
		t.Fatalf("silent HTTP/2 upstream: %d %q, want 408 stream_idle_timeout", resp.StatusCode, body)
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("408 after %v, before stream_idle_timeout %v", elapsed, timeout)
	}

	// After the response started the stream is reset: the client gets the
	// head and the first bytes, then an error instead of the body's end.
	resp, err := newClient(nil).Get("http://" + p.Addr("http") + "/stall-body")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil || !bytes.Equal(got, []byte("first")) {
		t.Fatalf("stalled HTTP/2 body: %d %q, err %v; want 200, %q, then an error", resp.StatusCode, got, err, "first")
	}
	lines := waitJSONLines(t, logPath, 2)
	for _, l := range lines {
		if l["flags"] != "SI" {
			t.Errorf("access log line %v: want flags SI", l)
		}
	}
}

func TestHTTP2UpstreamMirroring(t *testing.T) {
	main := newH2Host(t, "main")
	seen := make(chan string, 4)
	shadow, _ := h2Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- fmt.Sprintf("%s %s %s %s %s", r.Proto, r.Host, r.Method, r.URL.Path, b)
	}), false)
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "main",
		`request_mirror_policies = [{ cluster = "shadow", runtime_fraction = 100 }]`),
		h2Cluster("main", main.addr), h2Cluster("shadow", shadow)))
	req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/orders", strings.NewReader("hello"))
	req.Host = "shop.example:80"
	resp, body := do(t, newClient(nil), req)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "main ") {
		t.Fatalf("%d %q, want 200 from the main cluster", resp.StatusCode, body)
	}
	select {
	case got := <-seen:
		if want := "HTTP/2.0 shop.example-shadow:80 POST /orders hello"; got != want {
			t.Fatalf("shadow saw %q, want %q", got, want)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the HTTP/2 shadow cluster never got the mirrored request")
	}
}
