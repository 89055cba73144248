package extauthz_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	extauthz "github.com/sluice-proxy/sluice/gateway/filters/http/ext_authz"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// callbacks is the least a stream offers a decoder filter.
type callbacks struct {
	info  httpfilter.StreamInfo
	reply *httpfilter.LocalReply
}

func (c *callbacks) StreamID() uint64                                      { return 1 }
func (c *callbacks) ConnectionID() uint64                                  { return 1 }
func (c *callbacks) Info() *httpfilter.StreamInfo                          { return &c.info }
func (c *callbacks) Route() httpfilter.Route                               { return nil }
func (c *callbacks) ClearRouteCache()                                      {}
func (c *callbacks) ContinueDecoding()                                     {}
func (c *callbacks) SendLocalReply(r httpfilter.LocalReply)                { c.reply = &r }
func (c *callbacks) EncodeHeaders(*httpfilter.ResponseHeaders, bool) error { return nil }
func (c *callbacks) EncodeData(*buffer.Buffer, bool) error                 { return nil }
func (c *callbacks) EncodeTrailers(*httpfilter.Headers) error              { return nil }
func (c *callbacks) Encode1xxHeaders(*httpfilter.ResponseHeaders) error    { return nil }
func (c *callbacks) Post(fn func())                                        { fn() }

// BenchmarkExtAuthzCheck measures one request's check: the filter builds
// the check request, calls the echo plugin (a real process) over gRPC and
// applies its header mutations. ns/op is latency, not CPU.
func BenchmarkExtAuthzCheck(b *testing.B) {
	cfg := plugin.Config{Name: "bench-echo", Path: plugintest.Build(b, testplugins+"echo")}
	plugintest.Launch(b, cfg)
	info, _ := registry.Lookup(extauthz.Name)
	c := info.New()
	if _, err := toml.Decode(fmt.Sprintf("plugin = %q\ntimeout = \"5s\"", cfg.Name), c); err != nil {
		b.Fatal(err)
	}
	built, err := c.Build(&registry.BuildContext{})
	if err != nil {
		b.Fatal(err)
	}
	f := built.(*extauthz.Factory)
	cb := &callbacks{info: httpfilter.StreamInfo{
		Protocol:         "HTTP/1.1",
		DownstreamRemote: netip.MustParseAddrPort("127.0.0.1:40000"),
		DownstreamLocal:  netip.MustParseAddrPort("127.0.0.1:8080"),
	}}
	var h httpfilter.RequestHeaders
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.Reset()
		h.Method, h.Scheme, h.Authority, h.Path = []byte("GET"), []byte("http"), []byte("example.com"), []byte("/api/items?id=7")
		h.Add("user-agent", "bench")
		h.Add("accept", "*/*")
		h.Add("x-request-id", "0123456789")
		fl := f.NewFilter(cb).(httpfilter.DecoderFilter)
		if fl.DecodeHeaders(&h, true) != httpfilter.HeadersContinue {
			b.Fatalf("check did not allow: %+v", cb.reply)
		}
		fl.OnDestroy()
	}
	b.StopTimer()
	if f.Stats.OK.Value() == 0 || f.Stats.Error.Value() != 0 {
		b.Fatalf("ok %d error %d", f.Stats.OK.Value(), f.Stats.Error.Value())
	}
}
