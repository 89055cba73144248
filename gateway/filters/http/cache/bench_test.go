package cache

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// benchCallbacks is a stream's callbacks that discard what is encoded.
type benchCallbacks struct {
	info  httpfilter.StreamInfo
	route httpfilter.Route
	sent  int
}

func (c *benchCallbacks) StreamID() uint64                     { return 1 }
func (c *benchCallbacks) ConnectionID() uint64                 { return 1 }
func (c *benchCallbacks) Info() *httpfilter.StreamInfo         { return &c.info }
func (c *benchCallbacks) Route() httpfilter.Route              { return c.route }
func (c *benchCallbacks) ClearRouteCache()                     {}
func (c *benchCallbacks) ContinueDecoding()                    {}
func (c *benchCallbacks) SendLocalReply(httpfilter.LocalReply) {}
func (c *benchCallbacks) EncodeHeaders(h *httpfilter.ResponseHeaders, end bool) error {
	c.sent++
	return nil
}
func (c *benchCallbacks) EncodeData(b *buffer.Buffer, end bool) error { c.sent += b.Len(); return nil }
func (c *benchCallbacks) EncodeTrailers(*httpfilter.Headers) error    { return nil }
func (c *benchCallbacks) Encode1xxHeaders(*httpfilter.ResponseHeaders) error {
	return nil
}
func (c *benchCallbacks) Post(fn func()) { fn() }

// disabledRoute disables the cache filter.
type disabledRoute struct{}

func (disabledRoute) Name() string                 { return "r" }
func (disabledRoute) FilterDisabled(n string) bool { return n == Name }
func (disabledRoute) PerFilterConfig(string) any   { return nil }

func benchFactory(b testing.TB) *Factory {
	v, err := (&Config{}).Build(&registry.BuildContext{})
	if err != nil {
		panic(err)
	}
	return v.(*Factory)
}

func request(method string) *httpfilter.RequestHeaders {
	h := &httpfilter.RequestHeaders{Method: []byte(method), Scheme: []byte("http"),
		Authority: []byte("example.com"), Path: []byte("/static/app.js?v=3")}
	h.Add("user-agent", "bench")
	h.Add("accept", "*/*")
	return h
}

func response(cc string) *httpfilter.ResponseHeaders {
	r := &httpfilter.ResponseHeaders{Status: 200}
	r.Add("content-type", "application/javascript")
	r.Add("content-length", "1024")
	r.Add("cache-control", cc)
	r.Add("etag", `"abc"`)
	return r
}

// run passes one request and its 1 KiB response through a new filter.
func run(fa *Factory, cb *benchCallbacks, req *httpfilter.RequestHeaders, resp *httpfilter.ResponseHeaders, body *buffer.Buffer) {
	fl := fa.NewFilter(cb).(*filter)
	defer fl.OnDestroy()
	if fl.DecodeHeaders(req, true) == httpfilter.HeadersContinue {
		fl.EncodeHeaders(resp, false)
		fl.EncodeData(body, true)
	}
}

// BenchmarkUncacheable is the cost of the filter for requests it does
// not cache: a POST (which invalidates its URL on success), a GET on a
// route that disables the filter, and a GET whose response is no-store.
func BenchmarkUncacheable(b *testing.B) {
	body := make([]byte, 1024)
	for _, tc := range []struct {
		name   string
		method string
		route  httpfilter.Route
		cc     string
	}{
		{"POST", "POST", nil, "max-age=60"},
		{"route-disabled", "GET", disabledRoute{}, "max-age=60"},
		{"no-store", "GET", nil, "no-store"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fa := benchFactory(b)
			cb := &benchCallbacks{route: tc.route}
			req, resp := request(tc.method), response(tc.cc)
			buf := buffer.New(body)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run(fa, cb, req, resp, buf)
			}
		})
	}
}

// BenchmarkHit is the cost of answering a GET from a stored 1 KiB entry.
func BenchmarkHit(b *testing.B) {
	fa := benchFactory(b)
	cb := &benchCallbacks{}
	req, resp := request("GET"), response("max-age=3600")
	run(fa, cb, req, resp, buffer.New(make([]byte, 1024)))
	if n, _ := fa.store.usage(); n != 1 {
		b.Fatalf("%d entries stored, want 1", n)
	}
	sent := cb.sent
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run(fa, cb, req, nil, nil)
	}
	b.StopTimer()
	if cb.sent == sent {
		b.Fatal("no response served from the cache")
	}
}

// BenchmarkMissAndStore is the cost of storing a 1 KiB response (each
// iteration a new URL, so entries are evicted once the store is full).
func BenchmarkMissAndStore(b *testing.B) {
	fa := benchFactory(b)
	cb := &benchCallbacks{}
	resp := response("max-age=3600")
	body := make([]byte, 1024)
	paths := make([][]byte, 4096)
	for i := range paths {
		paths[i] = []byte("/p/" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)))
	}
	req := request("GET")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Path = paths[i%len(paths)]
		fa.store.invalidate(appendBase(nil, req)) // a miss every time
		r := *resp
		run(fa, cb, req, &r, buffer.New(body))
	}
}
