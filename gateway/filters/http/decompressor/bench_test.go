package decompressor

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/coding"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func build(tb testing.TB, advertise bool) *Factory {
	tb.Helper()
	v, err := (&Config{DecompressorLibrary: &Library{Name: "b", Library: "gzip"},
		RequestDirectionConfig: RequestDirection{AdvertiseAcceptEncoding: &advertise}}).Build(&registry.BuildContext{})
	if err != nil {
		tb.Fatal(err)
	}
	return v.(*Factory)
}

// BenchmarkUncompressedBody is the filter's path for a request with an
// uncompressed body (no advertising): it must not touch the body.
func BenchmarkUncompressedBody(b *testing.B) {
	fa := build(b, false)
	h := &httpfilter.RequestHeaders{Method: []byte("POST"), Authority: []byte("a"), Path: []byte("/")}
	h.Add("content-type", "application/json")
	var buf buffer.Buffer
	body := make([]byte, 16<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		fl := fa.NewFilter(nil).(*filter)
		fl.DecodeHeaders(h, false)
		buf.Set(body)
		fl.DecodeData(&buf, true)
		fl.OnDestroy()
	}
}

// BenchmarkGzipRequestBody is the path of a 64 KiB gzip body (about 3:1)
// decompressed in 16 KiB pieces.
func BenchmarkGzipRequestBody(b *testing.B) {
	fa := build(b, false)
	in := compress(b, coding.Gzip, text(64<<10))
	h := &httpfilter.RequestHeaders{Method: []byte("POST"), Authority: []byte("a"), Path: []byte("/")}
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	var buf buffer.Buffer
	for b.Loop() {
		h.Reset()
		h.Add("content-encoding", "gzip")
		fl := fa.NewFilter(nil).(*filter)
		fl.DecodeHeaders(h, false)
		for i := 0; i < len(in); i += 16 << 10 {
			j := min(i+16<<10, len(in))
			buf.Set(in[i:j])
			if fl.DecodeData(&buf, j == len(in)) != httpfilter.DataContinue {
				b.Fatal("failed")
			}
		}
		fl.OnDestroy()
	}
}

func newReq() *httpfilter.RequestHeaders {
	return &httpfilter.RequestHeaders{Method: []byte("POST"), Authority: []byte("a"), Path: []byte("/")}
}

// BenchmarkAdvertise is the default config's per-request cost: the
// library's coding added to the request's Accept-Encoding.
func BenchmarkAdvertise(b *testing.B) {
	fa := build(b, true)
	h := newReq()
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Add("accept-encoding", "br, zstd")
		fl := fa.NewFilter(nil).(*filter)
		fl.DecodeHeaders(h, true)
	}
}
