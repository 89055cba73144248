package hcm

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// benchDecorate runs stream.decorate, the per-request header pass of an
// edge request (x-forwarded-for, x-forwarded-proto, x-request-id, the
// x-envoy-* and x-forwarded-client-cert sanitizing), on a typical browser
// request of nine fields, with cfg's options.
func benchDecorate(b *testing.B, cfg *Config) {
	cfg.StatPrefix, cfg.RouteConfig = "b", "r"
	cfg.withDefaults()
	f := &Factory{cfg: cfg, internal: defaultInternalRanges}
	var err error
	if f.xfcc, err = cfg.xfccMode(); err != nil {
		b.Fatal(err)
	}
	info := &netfilter.Info{}
	c := &connection{f: f, info: info, remoteIP: []byte("203.0.113.7")}
	c.initXFCC()
	s := &stream{conn: c}
	fields := [][2]string{
		{"host", "example.com"}, {"user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"},
		{"accept", "text/html,application/xhtml+xml"}, {"accept-language", "en-US,en;q=0.5"},
		{"accept-encoding", "gzip, deflate, br"}, {"cookie", "session=0123456789abcdef"},
		{"referer", "https://example.com/"}, {"sec-fetch-mode", "navigate"}, {"x-forwarded-client-cert", "Hash=aa"},
	}
	var pre []httpfilter.Field
	for _, kv := range fields {
		pre = append(pre, httpfilter.Field{Name: []byte(kv[0]), Value: []byte(kv[1])})
	}
	h := httpfilter.RequestHeaders{Headers: httpfilter.Headers{Fields: make([]httpfilter.Field, 0, 16)}}
	b.ReportAllocs()
	for b.Loop() {
		h.Fields = append(h.Fields[:0], pre...)
		s.decorate(&h)
	}
}

// BenchmarkDecorate is the default options' cost (use_remote_address,
// SANITIZE), and with use_remote_address off (a separate removal pass).
func BenchmarkDecorate(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchDecorate(b, &Config{}) })
	off := false
	b.Run("no_remote_address", func(b *testing.B) { benchDecorate(b, &Config{UseRemoteAddress: &off}) })
	b.Run("always_forward_only", func(b *testing.B) {
		benchDecorate(b, &Config{ForwardClientCertDetails: "ALWAYS_FORWARD_ONLY"})
	})
}
