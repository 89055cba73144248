package http1

import (
	"bytes"
	"testing"
)

// browserGET is a typical browser request with 8 header fields.
const browserGET = "GET /static/app.js?v=1234 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Date: Mon, 02 Jun 2025 10:00:00 GMT\r\n" +
	"Content-Type: application/javascript\r\n" +
	"Content-Length: 12345\r\n" +
	"Cache-Control: public, max-age=31536000\r\n" +
	"ETag: \"5f3e-12345\"\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"Server: origin\r\n" +
	"\r\n"

// repeatReader serves the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

func BenchmarkParseRequestHead(b *testing.B) {
	rd := NewReader(&repeatReader{data: []byte(browserGET)})
	var req Request
	b.ReportAllocs()
	b.SetBytes(int64(len(browserGET)))
	for b.Loop() {
		if err := rd.ReadRequest(&req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponseHead(b *testing.B) {
	rd := NewReader(&repeatReader{data: []byte(typicalResponse)})
	var resp Response
	method := []byte("HEAD")
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalResponse)))
	for b.Loop() {
		if err := rd.ReadResponse(&resp, method, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequestHead(b *testing.B) {
	rd := NewReader(bytes.NewReader([]byte(browserGET)))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		b.Fatal(err)
	}
	req.Headers.Scheme = []byte("https")
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendRequestHead(dst[:0], &req.Headers, req.Framing, req.ContentLength, req.KeepAlive)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkChunkedBody(b *testing.B) {
	var in []byte
	chunk := bytes.Repeat([]byte("x"), 1000)
	for range 16 {
		in = AppendChunk(in, chunk)
	}
	in = AppendLastChunk(in, nil)
	src := bytes.NewReader(in)
	rd := NewReader(src)
	p := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(16 * 1000)
	for b.Loop() {
		src.Reset(in)
		rd.Reset(src)
		body := rd.BodyReader(Chunked, -1)
		for {
			if _, err := body.Read(p); err != nil {
				break
			}
		}
	}
}

func TestParseRequestHeadDoesNotAllocate(t *testing.T) {
	rd := NewReader(&repeatReader{data: []byte(browserGET)})
	var req Request
	allocs := testing.AllocsPerRun(1000, func() {
		if err := rd.ReadRequest(&req, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per request head, want 0", allocs)
	}
	if len(req.Headers.Fields) != 6 || string(req.Headers.Authority) != "www.example.com" {
		t.Fatalf("unexpected parse: %d fields, authority %q", len(req.Headers.Fields), req.Headers.Authority)
	}
}
