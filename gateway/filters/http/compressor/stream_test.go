package compressor

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

var testPage = strings.Repeat("<p>sluice compresses what the client accepts</p>\n", 170)

// decoder returns a reader of the coding's stream in r.
func decoder(t testing.TB, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("unknown coding %q", coding)
	return nil
}

// TestEachLibraryStreams runs a response through each library's filter: a
// first chunk, a flush (the empty chunk the router sends before it waits),
// which must make the first chunk decodable, then the rest; the decoded
// body is the original.
func TestEachLibraryStreams(t *testing.T) {
	for _, lib := range []string{"gzip", "brotli", "zstd"} {
		t.Run(lib, func(t *testing.T) {
			fs := buildChain(t, Config{Library: lib})
			f := fs[0].NewFilter(nil).(*filter)
			req := &httpfilter.RequestHeaders{Method: []byte("GET")}
			req.Add("accept-encoding", fs[0].lib.Coding())
			f.DecodeHeaders(req, true)
			h := &httpfilter.ResponseHeaders{Status: 200}
			h.Add("content-type", "text/plain")
			f.EncodeHeaders(h, false)
			coding := string(h.Get("content-encoding"))
			if coding != fs[0].lib.Coding() {
				t.Fatalf("content-encoding %q, want %q", coding, fs[0].lib.Coding())
			}
			var wire bytes.Buffer
			send := func(p string, end bool) {
				b := buffer.New([]byte(p))
				f.EncodeData(b, end)
				wire.Write(b.Bytes())
			}
			send("first part\n", false)
			send("", false) // the flush
			// What is on the wire so far decodes to the first part.
			zr := decoder(t, coding, bytes.NewReader(bytes.Clone(wire.Bytes())))
			first := make([]byte, len("first part\n"))
			if _, err := io.ReadFull(zr, first); err != nil || string(first) != "first part\n" {
				t.Fatalf("after a flush the stream decodes to %q, %v; want the first part", first, err)
			}
			send(testPage, false)
			send("", true)
			if f.zw != nil {
				t.Error("the encoder was not returned to its pool at the end of the stream")
			}
			out, err := io.ReadAll(decoder(t, coding, &wire))
			if err != nil || string(out) != "first part\n"+testPage {
				t.Fatalf("decoded %d bytes, %v; want the %d sent", len(out), err, len("first part\n"+testPage))
			}
			if wire.Len() >= len(testPage)/4 {
				t.Errorf("%d compressed bytes for %d of repetitive HTML", wire.Len(), len(testPage))
			}
		})
	}
}

// BenchmarkResponse measures one compressed response of 8 KiB in two
// chunks, with pooled encoders: gzip alone in its chain, and each library
// chosen in a chain of two compressors (both filters run, as in a chain).
// The allocations per response must stay small (no encoder per response).
func BenchmarkResponse(b *testing.B) {
	for _, bc := range []struct {
		name  string
		chain []Config
	}{
		{"gzip_alone", []Config{{}}},
		{"gzip", []Config{{}, {Library: "zstd"}}},
		{"brotli", []Config{{Library: "brotli"}, {}}},
		{"zstd", []Config{{Library: "zstd"}, {Library: "brotli"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fs := buildChain(b, bc.chain...)
			half := []byte(testPage[:len(testPage)/2])
			accept := []byte("gzip, deflate, br, zstd")
			req := &httpfilter.RequestHeaders{Method: []byte("GET")}
			req.Add("accept-encoding", "")
			buf := buffer.New(nil)
			h := &httpfilter.ResponseHeaders{}
			b.ReportAllocs()
			b.SetBytes(int64(len(testPage)))
			for b.Loop() {
				req.Fields[0].Value = accept
				h.Fields = h.Fields[:0]
				h.Status = 200
				h.Add("content-type", "text/html")
				for i := len(fs) - 1; i >= 0; i-- { // the response path runs the chain backwards
					f := fs[i].NewFilter(nil).(*filter)
					f.DecodeHeaders(req, true)
					f.EncodeHeaders(h, false)
					for i := range 2 {
						buf.Set(half)
						f.EncodeData(buf, i == 1)
					}
					f.OnDestroy()
				}
				if string(h.Get("content-encoding")) != fs[0].lib.Coding() {
					b.Fatalf("content-encoding %q, want %q", h.Get("content-encoding"), fs[0].lib.Coding())
				}
			}
		})
	}
}

// TestAbortedStreamDoesNotSpoilThePool checks that an encoder given back
// mid-stream (the stream reset before its end) starts clean for the next
// response.
func TestAbortedStreamDoesNotSpoilThePool(t *testing.T) {
	for _, lib := range []string{"gzip", "brotli", "zstd"} {
		t.Run(lib, func(t *testing.T) {
			fa := buildChain(t, Config{Library: lib})[0]
			run := func(abort bool) []byte {
				f := fa.NewFilter(nil).(*filter)
				req := &httpfilter.RequestHeaders{Method: []byte("GET")}
				req.Add("accept-encoding", "*")
				f.DecodeHeaders(req, true)
				h := &httpfilter.ResponseHeaders{Status: 200}
				h.Add("content-type", "text/html")
				f.EncodeHeaders(h, false)
				var wire []byte
				b := buffer.New([]byte(testPage))
				f.EncodeData(b, !abort)
				wire = append(wire, b.Bytes()...)
				f.OnDestroy()
				if f.zw != nil {
					t.Fatal("OnDestroy kept the encoder")
				}
				return wire
			}
			for range 5 {
				run(true)
				wire := run(false)
				out, err := io.ReadAll(decoder(t, fa.lib.Coding(), bytes.NewReader(wire)))
				if err != nil || string(out) != testPage {
					t.Fatalf("after an aborted stream: decoded %d bytes, %v; want %d", len(out), err, len(testPage))
				}
			}
		})
	}
}
