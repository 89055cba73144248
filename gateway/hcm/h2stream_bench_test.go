package hcm

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// BenchmarkH2ResponseHead is the per-response cost of handing an upstream
// head (six fields, as the benchmark origin's through the router) to a
// response writer's header map: HTTP/3's (HTTP/2 encodes the fields as they
// are: BenchmarkEncodeHead in gateway/codec/http2).
func BenchmarkH2ResponseHead(b *testing.B) {
	var h httpfilter.Headers
	h.Add("content-type", "text/plain")
	h.Add("content-length", "64")
	h.Add("date", "Tue, 24 Nov 2026 07:32:14 GMT")
	h.Add("server", "nginx/1.22.1")
	h.Add("x-envoy-upstream-service-time", "0")
	h.Add("connection", "keep-alive")
	b.ReportAllocs()
	for b.Loop() {
		hdr := make(http.Header, 8)
		setH2Fields(hdr, &h)
	}
}

// BenchmarkH2writerFlush is the cost of one write of the HTTP/2 connection
// (a HEADERS and a short DATA frame) through the coalescing writer.
func BenchmarkH2writerFlush(b *testing.B) {
	w := newH2writer(discardConn{})
	defer w.close()
	p := make([]byte, 9+92+9+64)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := w.Write(p); err != nil {
			b.Fatal(err)
		}
	}
}

// discardConn is a connection that takes every write at once.
type discardConn struct{}

func (discardConn) Write(p []byte) (int, error) { return io.Discard.Write(p) }

func (discardConn) SetWriteDeadline(time.Time) error { return nil }
