package http1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readChunked decodes a chunked body from in, through a 1-byte-at-a-time
// source when oneByte is set, and returns the body and trailers.
func readChunked(t *testing.T, in string, oneByte bool) (string, string, error) {
	t.Helper()
	var src io.Reader = strings.NewReader(in)
	if oneByte {
		src = iotest.OneByteReader(src)
	}
	rd := NewReader(src)
	b := rd.BodyReader(Chunked, -1)
	body, err := io.ReadAll(b)
	var tr strings.Builder
	if h := b.Trailers(); h != nil {
		for _, f := range h.Fields {
			tr.WriteString(string(f.Name) + "=" + string(f.Value) + ";")
		}
	}
	return string(body), tr.String(), err
}

func TestChunkedValid(t *testing.T) {
	tests := []struct {
		name, in, body, trailers string
	}{
		{"single chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"several chunks", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", "hello world", ""},
		{"empty body", "0\r\n\r\n", "", ""},
		{"uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ""},
		{"extension", "5;name\r\nhello\r\n0;last\r\n\r\n", "hello", ""},
		{"extension with value", "5;a=b;c=d\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"extension quoted", "5;a=\"x y\\\"z\"\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"trailers", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:  d \r\n\r\n", "hello", "x-checksum=abc;x-other=d;"},
		{"forbidden trailers dropped", "5\r\nhello\r\n0\r\nContent-Length: 5\r\nHost: h\r\nX-Ok: 1\r\n\r\n", "hello", "x-ok=1;"},
		{"binary data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", ""},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tt.name
			if oneByte {
				name += "/one byte reads"
			}
			t.Run(name, func(t *testing.T) {
				body, tr, err := readChunked(t, tt.in, oneByte)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if body != tt.body || tr != tt.trailers {
					t.Fatalf("got body %q trailers %q, want %q %q", body, tr, tt.body, tt.trailers)
				}
			})
		}
	}
}

func TestChunkedMalformed(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		status int // 0: io.ErrUnexpectedEOF
	}{
		{"no size", "\r\nhello\r\n0\r\n\r\n", 400},
		{"non-hex size", "g\r\nhello\r\n0\r\n\r\n", 400},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"space before size", " 5\r\nhello\r\n0\r\n\r\n", 400},
		{"space after size", "5 \r\nhello\r\n0\r\n\r\n", 400},
		{"tab before extension", "5\t;a\r\nhello\r\n0\r\n\r\n", 400},
		{"space in extension", "5; a\r\nhello\r\n0\r\n\r\n", 400},
		{"space around equals", "5;a = b\r\nhello\r\n0\r\n\r\n", 400},
		{"empty extension", "5;\r\nhello\r\n0\r\n\r\n", 400},
		{"unterminated quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400},
		{"negative size", "-5\r\nhello\r\n0\r\n\r\n", 400},
		{"overflow", "10000000000000000\r\nx\r\n0\r\n\r\n", 400},
		{"overflow int64", "8000000000000000\r\nx\r\n0\r\n\r\n", 400},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", 400},
		{"bare CR in size line", "5\r;a\r\nhello\r\n0\r\n\r\n", 400},
		{"data longer than size", "3\r\nhello\r\n0\r\n\r\n", 400},
		{"LF only after data", "5\r\nhello\n0\r\n\r\n", 400},
		{"missing CRLF after data", "5\r\nhello0\r\n\r\n", 400},
		{"bare LF in trailers", "0\r\nX: a\n\r\n", 400},
		{"obs-fold in trailers", "0\r\nX: a\r\n b\r\n\r\n", 400},
		{"bad trailer name", "0\r\nX Y: a\r\n\r\n", 400},
		{"NUL in trailer", "0\r\nX: \x00\r\n\r\n", 400},
		{"too many trailers", "0\r\n" + strings.Repeat("X: a\r\n", 101) + "\r\n", 431},
		{"trailers too large", "0\r\nX: " + strings.Repeat("a", 61<<10) + "\r\n\r\n", 431},
		{"size line too long", "5;" + strings.Repeat("a", 17<<10) + "\r\nhello\r\n0\r\n\r\n", 400},
		{"truncated data", "5\r\nhel", 0},
		{"truncated before last chunk", "5\r\nhello\r\n", 0},
		{"truncated trailers", "0\r\nX: a\r\n", 0},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tt.name
			if oneByte {
				name += "/one byte reads"
			}
			t.Run(name, func(t *testing.T) {
				_, _, err := readChunked(t, tt.in, oneByte)
				if tt.status == 0 {
					if err != io.ErrUnexpectedEOF {
						t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
					}
					return
				}
				var e *Error
				if !errors.As(err, &e) || e.Status != tt.status {
					t.Fatalf("got %v, want *Error with status %d", err, tt.status)
				}
			})
		}
	}
}

func TestChunkedLastDataComesWithEOF(t *testing.T) {
	rd := NewReader(strings.NewReader("5\r\nhello\r\n0\r\n\r\nNEXT"))
	b := rd.BodyReader(Chunked, -1)
	p := make([]byte, 64)
	n, err := b.Read(p)
	if string(p[:n]) != "hello" || err != io.EOF {
		t.Fatalf("got %q, %v; want \"hello\", io.EOF", p[:n], err)
	}
	if got := string(rd.Buffered()); got != "NEXT" {
		t.Fatalf("buffered after body %q, want \"NEXT\"", got)
	}
}

func TestContentLengthBody(t *testing.T) {
	for _, oneByte := range []bool{false, true} {
		t.Run(map[bool]string{false: "whole", true: "one byte reads"}[oneByte], func(t *testing.T) {
			var src io.Reader = strings.NewReader("0123456789NEXT")
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			rd := NewReader(src)
			body, err := io.ReadAll(rd.BodyReader(ContentLength, 10))
			if err != nil || string(body) != "0123456789" {
				t.Fatalf("got %q, %v", body, err)
			}
			rest, _ := io.ReadAll(rd.BodyReader(UntilClose, -1))
			if string(rest) != "NEXT" {
				t.Fatalf("bytes after body %q, want \"NEXT\"", rest)
			}
		})
	}
}

func TestContentLengthBodyTruncated(t *testing.T) {
	rd := NewReader(strings.NewReader("01234"))
	_, err := io.ReadAll(rd.BodyReader(ContentLength, 10))
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestLargeBodyReadsDirect(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 64<<10)
	in := append([]byte("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 524288\r\n\r\n"), data...)
	rd := NewReader(bytes.NewReader(in))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd.BodyReader(req.Framing, req.ContentLength))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("body mismatch (len %d), err %v", len(got), err)
	}
	if string(req.Headers.Path) != "/" || string(req.Headers.Authority) != "h" {
		t.Fatalf("head overwritten by body: path %q authority %q", req.Headers.Path, req.Headers.Authority)
	}
}

func TestNoBody(t *testing.T) {
	rd := NewReader(strings.NewReader("GET"))
	n, err := rd.BodyReader(NoBody, -1).Read(make([]byte, 8))
	if n != 0 || err != io.EOF {
		t.Fatalf("got %d, %v; want 0, io.EOF", n, err)
	}
	if string(rd.Buffered()) != "" {
		t.Fatal("NoBody read from the source")
	}
}
