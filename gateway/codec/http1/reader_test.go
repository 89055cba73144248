package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestPipelinedRequestsOverLoopback sends several pipelined requests with
// bodies of each framing over a real TCP connection and reads them back.
func TestPipelinedRequestsOverLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in := "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		for i := 0; i < len(in); i += 7 {
			if _, err := c.Write([]byte(in[i:min(i+7, len(in))])); err != nil {
				return
			}
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := NewReader(c)
	defer rd.Release()
	want := []struct{ path, body, trailers string }{
		{"/a", "hello", ""},
		{"/b", "abcde", "x-t=1;"},
		{"/c", "", ""},
	}
	var req Request
	for _, w := range want {
		if err := rd.ReadRequest(&req, nil); err != nil {
			t.Fatalf("%s: %v", w.path, err)
		}
		b := rd.BodyReader(req.Framing, req.ContentLength)
		body, err := io.ReadAll(b)
		if err != nil {
			t.Fatalf("%s body: %v", w.path, err)
		}
		var tr string
		if h := b.Trailers(); h != nil {
			for _, f := range h.Fields {
				tr += string(f.Name) + "=" + string(f.Value) + ";"
			}
		}
		if string(req.Headers.Path) != w.path || string(body) != w.body || tr != w.trailers {
			t.Fatalf("got path %q body %q trailers %q, want %+v", req.Headers.Path, body, tr, w)
		}
	}
	if req.KeepAlive {
		t.Fatal("last request should not keep the connection alive")
	}
	if err := rd.ReadRequest(&req, nil); err != io.EOF {
		t.Fatalf("after close: got %v, want io.EOF", err)
	}
}

// TestHeadSurvivesBodyRead fills the buffer with a large head, then reads a
// chunked body one byte at a time through long chunk lines that force the
// buffer to be compacted and regrown, and checks the head is intact.
func TestHeadSurvivesBodyRead(t *testing.T) {
	head := "POST /pinned HTTP/1.1\r\nHost: pinned.example\r\nX-Big: " + strings.Repeat("v", 3900) +
		"\r\nTransfer-Encoding: chunked\r\n\r\n"
	var body strings.Builder
	var want strings.Builder
	for i := 0; i < 50; i++ {
		data := strings.Repeat(string(rune('a'+i%26)), 100+i)
		body.WriteString(strings.ToLower(strings.TrimLeft(hexString(len(data)), "0")))
		body.WriteString(";ext=" + strings.Repeat("e", 500) + "\r\n" + data + "\r\n")
		want.WriteString(data)
	}
	body.WriteString("0\r\n\r\n")
	rd := NewReader(iotest.OneByteReader(strings.NewReader(head + body.String())))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd.BodyReader(req.Framing, req.ContentLength))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatal("body mismatch")
	}
	if string(req.Headers.Path) != "/pinned" || string(req.Headers.Authority) != "pinned.example" ||
		string(req.Headers.Get("x-big")) != strings.Repeat("v", 3900) {
		t.Fatal("head overwritten while reading the body")
	}
}

func hexString(n int) string {
	const digits = "0123456789abcdef"
	var b []byte
	for ; n > 0; n >>= 4 {
		b = append([]byte{digits[n&15]}, b...)
	}
	return string(b)
}

func TestBufferedAndPreload(t *testing.T) {
	// A first reader reads one request and has the next one's bytes
	// buffered; a second reader adopts them as a handed-off connection.
	rest := "GET /second HTTP/1.1\r\nHost: h\r\n\r\n"
	rd := NewReader(strings.NewReader("GET /first HTTP/1.1\r\nHost: h\r\n\r\n" + rest[:10]))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	handed := append([]byte(nil), rd.Buffered()...)
	if string(handed) != rest[:10] {
		t.Fatalf("buffered %q, want %q", handed, rest[:10])
	}
	rd.Release()

	rd2 := NewReader(strings.NewReader(rest[10:]))
	rd2.Preload(handed)
	if err := rd2.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	if string(req.Headers.Path) != "/second" {
		t.Fatalf("path %q, want /second", req.Headers.Path)
	}
}

func TestPreloadLargerThanBuffer(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 10000) + "\r\n\r\n"
	rd := NewReader(strings.NewReader(""))
	rd.Preload([]byte(big))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	if len(req.Headers.Get("x")) != 10000 {
		t.Fatal("preloaded head not parsed whole")
	}
}

func TestResetReuse(t *testing.T) {
	rd := NewReader(strings.NewReader("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nleftover"))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	rd.Release()
	rd.Reset(strings.NewReader("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"))
	if len(rd.Buffered()) != 0 {
		t.Fatal("Reset kept buffered bytes")
	}
	if err := rd.ReadRequest(&req, nil); err != nil || string(req.Headers.Path) != "/2" {
		t.Fatalf("after Reset: %v, path %q", err, req.Headers.Path)
	}
}

func TestSourceErrorPropagates(t *testing.T) {
	boom := iotest.ErrTimeout
	rd := NewReader(io.MultiReader(strings.NewReader("GET / HTTP/1.1\r\n"), iotest.ErrReader(boom)))
	if err := rd.ReadRequest(new(Request), nil); err != boom {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

func TestHeadSplitAcrossOneByteReads(t *testing.T) {
	in := "\r\nPOST /x?y HTTP/1.1\r\nHost: h\r\nA: b\r\nContent-Length: 3\r\n\r\nabc"
	rd := NewReader(iotest.OneByteReader(strings.NewReader(in)))
	var req Request
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rd.BodyReader(req.Framing, req.ContentLength))
	if err != nil || string(body) != "abc" || string(req.Headers.Path) != "/x?y" || !bytes.Equal(req.Headers.Get("a"), []byte("b")) {
		t.Fatalf("got path %q body %q err %v", req.Headers.Path, body, err)
	}
}

// TestDeadlineIsNotSticky checks that a read deadline interrupting a head
// leaves the Reader usable: once the deadline is extended, the same request
// is read whole, including the bytes that arrived before the deadline.
func TestDeadlineIsNotSticky(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	if _, err := client.Write([]byte("GET /deadline HTTP/1.1\r\nHo")); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(server)
	var req Request
	// The head cannot complete: the rest is only sent below.
	if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := rd.ReadRequest(&req, nil); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if _, err := client.Write([]byte("st: h\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := rd.ReadRequest(&req, nil); err != nil {
		t.Fatalf("after extending the deadline: %v", err)
	}
	if string(req.Headers.Path) != "/deadline" || string(req.Headers.Authority) != "h" {
		t.Fatalf("got path %q authority %q", req.Headers.Path, req.Headers.Authority)
	}
}
