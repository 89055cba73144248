package hcm_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// Test filters, registered once for this package's tests.

// asyncConfig parks the headers and continues from another goroutine via
// Post, adding a header first.
type asyncConfig struct{}

func (*asyncConfig) Build(*registry.BuildContext) (any, error) {
	return httpfilter.FactoryFunc(func(cb httpfilter.DecoderCallbacks) any { return &asyncFilter{cb: cb} }), nil
}

type asyncFilter struct {
	cb   httpfilter.DecoderCallbacks
	done bool // owned by the stream's goroutine (set from the posted func)
}

func (f *asyncFilter) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	go f.cb.Post(func() {
		h.Add("x-async", "done")
		f.done = true
		f.cb.ContinueDecoding()
	})
	return httpfilter.HeadersStopIteration
}

// DecodeData holds the body while the check is pending, as Envoy filters do.
func (f *asyncFilter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	if !f.done {
		return httpfilter.DataStopAndBuffer
	}
	return httpfilter.DataContinue
}
func (f *asyncFilter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *asyncFilter) OnDestroy() {}

// bodyGateConfig holds the headers and the whole body until the body has
// ended, then stamps its size into a header (as ext_authz with the body does).
type bodyGateConfig struct{}

func (*bodyGateConfig) Build(*registry.BuildContext) (any, error) {
	return httpfilter.FactoryFunc(func(cb httpfilter.DecoderCallbacks) any { return &bodyGate{} }), nil
}

type bodyGate struct {
	h *httpfilter.RequestHeaders
	n int
}

func (f *bodyGate) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	f.h = h
	if end {
		return httpfilter.HeadersContinue
	}
	return httpfilter.HeadersStopIteration
}
func (f *bodyGate) DecodeData(b *buffer.Buffer, end bool) httpfilter.DataStatus {
	f.n += b.Len()
	if !end {
		return httpfilter.DataStopAndBuffer
	}
	f.h.Add("x-body-seen", fmt.Sprint(f.n))
	return httpfilter.DataContinue
}
func (f *bodyGate) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *bodyGate) OnDestroy() {}

// denyConfig answers 401 locally when the request has no x-key, and adds a
// response header on the way back.
type denyConfig struct{}

func (*denyConfig) Build(*registry.BuildContext) (any, error) {
	return httpfilter.FactoryFunc(func(cb httpfilter.DecoderCallbacks) any { return &deny{cb: cb} }), nil
}

type deny struct{ cb httpfilter.DecoderCallbacks }

func (f *deny) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	if h.Get("x-key") == nil {
		f.cb.SendLocalReply(httpfilter.LocalReply{Status: 401, Body: "no key\n", Flags: httpfilter.FlagUnauthorizedExternalService})
		return httpfilter.HeadersStopIteration
	}
	return httpfilter.HeadersContinue
}
func (f *deny) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus { return httpfilter.DataContinue }
func (f *deny) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *deny) EncodeHeaders(h *httpfilter.ResponseHeaders, end bool) httpfilter.HeadersStatus {
	h.Add("x-checked", "yes")
	return httpfilter.HeadersContinue
}
func (f *deny) EncodeData(*buffer.Buffer, bool) httpfilter.DataStatus { return httpfilter.DataContinue }
func (f *deny) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *deny) OnDestroy() {}

// replyOnDataConfig is a misbehaving filter: every response body it sees,
// its own local reply's included, it answers with a local reply.
type replyOnDataConfig struct{}

func (*replyOnDataConfig) Build(*registry.BuildContext) (any, error) {
	return httpfilter.FactoryFunc(func(cb httpfilter.DecoderCallbacks) any { return &replyOnData{cb: cb} }), nil
}

type replyOnData struct{ cb httpfilter.DecoderCallbacks }

func (f *replyOnData) DecodeHeaders(*httpfilter.RequestHeaders, bool) httpfilter.HeadersStatus {
	return httpfilter.HeadersContinue
}
func (f *replyOnData) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}
func (f *replyOnData) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *replyOnData) EncodeHeaders(*httpfilter.ResponseHeaders, bool) httpfilter.HeadersStatus {
	return httpfilter.HeadersContinue
}
func (f *replyOnData) EncodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	f.cb.SendLocalReply(httpfilter.LocalReply{Status: 502, Body: "bad body\n"})
	return httpfilter.DataContinue
}
func (f *replyOnData) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *replyOnData) OnDestroy() {}

func init() {
	registry.Register(registry.Info{Name: "sluice.filters.http.test_reply_on_data", Kind: registry.HTTP, New: func() registry.Config { return &replyOnDataConfig{} }})
	registry.Register(registry.Info{Name: "sluice.filters.http.test_async", Kind: registry.HTTP, New: func() registry.Config { return &asyncConfig{} }})
	registry.Register(registry.Info{Name: "sluice.filters.http.test_body_gate", Kind: registry.HTTP, New: func() registry.Config { return &bodyGateConfig{} }})
	registry.Register(registry.Info{Name: "sluice.filters.http.test_deny", Kind: registry.HTTP, New: func() registry.Config { return &denyConfig{} }})
}

// start builds a generation with the given HTTP filters before the router,
// serves it on a loopback listener and returns the proxy's address.
func start(t *testing.T, upstream string, filters ...string) string {
	t.Helper()
	var chain strings.Builder
	for _, f := range filters {
		fmt.Fprintf(&chain, "[[listener.filter_chain.filter.config.http_filter]]\nname = %q\n", f)
	}
	return startChain(t, upstream, chain.String())
}

// startChain is start with the HTTP filter tables (TOML) given whole.
func startChain(t *testing.T, upstream, chain string) string {
	t.Helper()
	text := fmt.Sprintf(`
[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "t"
route_config = "r"
%s
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"

[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/" }
cluster = "up"

[[cluster]]
name = "up"
endpoints = [%q]
`, chain, upstream)
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	g, err := server.Build(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve("l", ln)
	t.Cleanup(g.Close)
	return ln.Addr().String()
}

// echoUpstream answers with the request's x-async / x-body-seen headers and
// its body.
func echoUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-async", r.Header.Get("x-async"))
		w.Header().Set("x-body-seen", r.Header.Get("x-body-seen"))
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestParkedHeadersResumeThroughPost(t *testing.T) {
	addr := start(t, echoUpstream(t), "sluice.filters.http.test_async")
	for i := range 3 { // several streams on one connection
		resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-async") != "done" || string(body) != "payload" {
			t.Fatalf("request %d: status %d x-async %q body %q", i, resp.StatusCode, resp.Header.Get("x-async"), body)
		}
	}
}

func TestBufferedBodyReachesRouterAfterFilterContinues(t *testing.T) {
	addr := start(t, echoUpstream(t), "sluice.filters.http.test_body_gate")
	payload := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: many chunks
	resp, err := http.Post("http://"+addr+"/", "application/octet-stream", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("x-body-seen") != fmt.Sprint(len(payload)) {
		t.Fatalf("x-body-seen = %q, want %d (headers reached the upstream before the filter saw the body)", resp.Header.Get("x-body-seen"), len(payload))
	}
	if !bytes.Equal(body, payload) {
		t.Fatalf("upstream got %d bytes, want the %d sent", len(body), len(payload))
	}
}

func TestLocalReplyRunsEncoderFiltersAndSkipsUpstream(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	t.Cleanup(srv.Close)
	addr := start(t, srv.Listener.Addr().String(), "sluice.filters.http.test_deny")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || string(body) != "no key\n" || resp.Header.Get("x-checked") != "yes" {
		t.Fatalf("status %d body %q x-checked %q", resp.StatusCode, body, resp.Header.Get("x-checked"))
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("x-key", "k")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || hits != 1 || resp.Header.Get("x-checked") != "yes" {
		t.Fatalf("allowed request: status %d, upstream hits %d, x-checked %q", resp.StatusCode, hits, resp.Header.Get("x-checked"))
	}
}

func TestTrailersReachAFilterHoldingTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-body-seen", r.Header.Get("x-body-seen"))
		fmt.Fprintf(w, "%d bytes, trailer %q", len(body), r.Trailer.Get("X-Check"))
	}))
	t.Cleanup(srv.Close)
	addr := start(t, srv.Listener.Addr().String(), "sluice.filters.http.test_body_gate")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Check\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Check: yes\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a chunked request with trailers behind a filter holding the body got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != `5 bytes, trailer "yes"` {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

// TestLocalReplyFromALocalReplyEndsTheStream checks that a filter sending a
// local reply while the stream's own local reply passes through it (here:
// for every response body) gets the stream reset, not an endless
// recursion that would overflow the goroutine's stack and take the worker
// down; the connection manager keeps serving.
func TestLocalReplyFromALocalReplyEndsTheStream(t *testing.T) {
	addr := start(t, echoUpstream(t), "sluice.filters.http.test_reply_on_data")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 2 {
		resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader("upstream body"))
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == 200 {
				t.Fatalf("request %d: got the upstream's 200 %q through a filter that replaces every body", i, b)
			}
		}
	}
}
