package csrf

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// noRoute is DecoderCallbacks without a route; its other methods are not
// called by the filter on the paths benchmarked.
type noRoute struct{ httpfilter.DecoderCallbacks }

func (noRoute) Route() httpfilter.Route { return nil }

// BenchmarkGET is the filter's path for a request it does not check.
func BenchmarkGET(b *testing.B) {
	v, err := (&Config{}).Build(&registry.BuildContext{})
	if err != nil {
		b.Fatal(err)
	}
	fa := v.(*Factory)
	h := &httpfilter.RequestHeaders{Method: []byte("GET"), Authority: []byte("a.example"), Path: []byte("/")}
	h.Add("origin", "https://evil.example")
	b.ReportAllocs()
	for b.Loop() {
		fl := fa.NewFilter(noRoute{}).(*filter)
		fl.DecodeHeaders(h, true)
	}
}

// BenchmarkSameOriginPOST is the path of a checked request that passes.
func BenchmarkSameOriginPOST(b *testing.B) {
	v, _ := (&Config{}).Build(&registry.BuildContext{})
	fa := v.(*Factory)
	h := &httpfilter.RequestHeaders{Method: []byte("POST"), Authority: []byte("a.example:8080"), Path: []byte("/")}
	h.Add("origin", "https://a.example:8080")
	b.ReportAllocs()
	for b.Loop() {
		fl := fa.NewFilter(noRoute{}).(*filter)
		if fl.DecodeHeaders(h, false) != httpfilter.HeadersContinue {
			b.Fatal("rejected")
		}
	}
}
