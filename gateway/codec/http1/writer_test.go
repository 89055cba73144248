package http1

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

func fields(kv ...string) httpfilter.Headers {
	var h httpfilter.Headers
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestAppendRequestHead(t *testing.T) {
	tests := []struct {
		name      string
		h         httpfilter.RequestHeaders
		f         Framing
		cl        int64
		keepAlive bool
		want      string
	}{
		{"get keep-alive",
			httpfilter.RequestHeaders{Method: []byte("GET"), Scheme: []byte("https"), Authority: []byte("example.com"), Path: []byte("/a?b"), Headers: fields("accept", "*/*", "x-a", "1")},
			NoBody, -1, true,
			"GET /a?b HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\nx-a: 1\r\n\r\n"},
		{"post content-length close",
			httpfilter.RequestHeaders{Method: []byte("POST"), Authority: []byte("h"), Path: []byte("/u")},
			ContentLength, 12, false,
			"POST /u HTTP/1.1\r\nhost: h\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"},
		{"chunked",
			httpfilter.RequestHeaders{Method: []byte("PUT"), Authority: []byte("h"), Path: []byte("/")},
			Chunked, -1, true,
			"PUT / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"},
		{"connect",
			httpfilter.RequestHeaders{Method: []byte("CONNECT"), Authority: []byte("h:443")},
			NoBody, -1, true,
			"CONNECT h:443 HTTP/1.1\r\nhost: h:443\r\n\r\n"},
		{"empty path",
			httpfilter.RequestHeaders{Method: []byte("GET"), Authority: []byte("h")},
			NoBody, -1, true,
			"GET / HTTP/1.1\r\nhost: h\r\n\r\n"},
		{"no authority: empty host",
			httpfilter.RequestHeaders{Method: []byte("GET"), Path: []byte("/x")},
			NoBody, -1, true,
			"GET /x HTTP/1.1\r\nhost: \r\n\r\n"},
		{"framing fields and unsafe fields skipped",
			httpfilter.RequestHeaders{Method: []byte("GET"), Authority: []byte("h"), Path: []byte("/"),
				Headers: fields("host", "evil", "content-length", "9", "transfer-encoding", "chunked", "x-bad", "a\r\nx-injected: 1", "bad name", "v", "x-ok", "ok")},
			NoBody, -1, true,
			"GET / HTTP/1.1\r\nhost: h\r\nx-ok: ok\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendRequestHead([]byte("prefix:"), &tt.h, tt.f, tt.cl, tt.keepAlive))
			if got != "prefix:"+tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, "prefix:"+tt.want)
			}
		})
	}
}

func TestAppendResponseHead(t *testing.T) {
	tests := []struct {
		name         string
		major, minor int
		h            httpfilter.ResponseHeaders
		f            Framing
		cl           int64
		keepAlive    bool
		want         string
	}{
		{"200 content-length", 1, 1,
			httpfilter.ResponseHeaders{Status: 200, Headers: fields("content-type", "text/plain")}, ContentLength, 5, true,
			"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"},
		{"404 chunked close", 1, 1,
			httpfilter.ResponseHeaders{Status: 404}, Chunked, -1, false,
			"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"},
		{"http/1.0 client keep-alive", 1, 0,
			httpfilter.ResponseHeaders{Status: 200}, ContentLength, 0, true,
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"},
		{"http/1.0 client until close", 1, 0,
			httpfilter.ResponseHeaders{Status: 200}, UntilClose, -1, false,
			"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"},
		{"100 continue", 1, 1,
			httpfilter.ResponseHeaders{Status: 100}, NoBody, -1, true,
			"HTTP/1.1 100 Continue\r\n\r\n"},
		{"head response keeps length", 1, 1,
			httpfilter.ResponseHeaders{Status: 200}, NoBody, 1234, true,
			"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"},
		{"204", 1, 1,
			httpfilter.ResponseHeaders{Status: 204}, NoBody, -1, true,
			"HTTP/1.1 204 No Content\r\n\r\n"},
		{"unknown code", 1, 1,
			httpfilter.ResponseHeaders{Status: 599}, ContentLength, 0, true,
			"HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n"},
		{"invalid code", 1, 1,
			httpfilter.ResponseHeaders{Status: 7}, ContentLength, 0, true,
			"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendResponseHead(nil, tt.major, tt.minor, &tt.h, tt.f, tt.cl, tt.keepAlive))
			if got != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestAppendChunk(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"empty is a no-op", "", ""},
		{"small", "hello", "5\r\nhello\r\n"},
		{"hex size", "0123456789abcdefXYZ", "13\r\n0123456789abcdefXYZ\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendChunk(nil, []byte(tt.data))); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendLastChunk(t *testing.T) {
	tr := fields("x-checksum", "abc", "content-length", "1")
	tests := []struct {
		name     string
		trailers *httpfilter.Headers
		want     string
	}{
		{"no trailers", nil, "0\r\n\r\n"},
		{"trailers", &tr, "0\r\nx-checksum: abc\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendLastChunk(nil, tt.trailers)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	h := httpfilter.RequestHeaders{Method: []byte("GET"), Authority: []byte("h"), Path: []byte("/"), Headers: fields("a", "b")}
	dst := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendRequestHead(dst[:0], &h, ContentLength, 1234567, false)
		dst = AppendChunk(dst, []byte("data"))
		dst = AppendLastChunk(dst, &h.Headers)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per run, want 0", allocs)
	}
}
