package http1

import (
	"errors"
	"strings"
	"testing"
)

func TestReadResponseValid(t *testing.T) {
	tests := []struct {
		name      string
		head      string
		method    string
		status    int
		minor     int
		fields    string
		framing   Framing
		cl        int64
		keepAlive bool
		upgrade   string
	}{
		{name: "content-length", head: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n", method: "GET",
			status: 200, minor: 1, fields: "content-type=text/plain;content-length=5;", framing: ContentLength, cl: 5, keepAlive: true},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: "GET",
			status: 200, minor: 1, framing: Chunked, cl: -1, keepAlive: true},
		{name: "until close", head: "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", method: "GET",
			status: 200, minor: 1, fields: "x=y;", framing: UntilClose, cl: -1},
		{name: "head response keeps length", head: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method: "HEAD",
			status: 200, minor: 1, fields: "content-length=99;", framing: NoBody, cl: 99, keepAlive: true},
		{name: "head response chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: "HEAD",
			status: 200, minor: 1, framing: NoBody, cl: -1, keepAlive: true},
		{name: "204", head: "HTTP/1.1 204 No Content\r\n\r\n", method: "DELETE",
			status: 204, minor: 1, framing: NoBody, cl: -1, keepAlive: true},
		{name: "204 drops a content-length", head: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX: y\r\n\r\n", method: "GET",
			status: 204, minor: 1, fields: "x=y;", framing: NoBody, cl: -1, keepAlive: true},
		{name: "1xx drops a content-length", head: "HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\nLink: </a>\r\n\r\n", method: "GET",
			status: 103, minor: 1, fields: "link=</a>;", framing: NoBody, cl: -1, keepAlive: true},
		{name: "CONNECT 200 drops a content-length", head: "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", method: "CONNECT",
			status: 200, minor: 1, framing: NoBody, cl: -1, keepAlive: true},
		{name: "304 keeps length", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n", method: "GET",
			status: 304, minor: 1, fields: "content-length=10;etag=\"x\";", framing: NoBody, cl: 10, keepAlive: true},
		{name: "100 continue", head: "HTTP/1.1 100 Continue\r\n\r\n", method: "PUT",
			status: 100, minor: 1, framing: NoBody, cl: -1, keepAlive: true},
		{name: "101 upgrade", head: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n", method: "GET",
			status: 101, minor: 1, fields: "sec-websocket-accept=a;", framing: NoBody, cl: -1, keepAlive: true, upgrade: "websocket"},
		{name: "connect 200", head: "HTTP/1.1 200 Connection Established\r\n\r\n", method: "CONNECT",
			status: 200, minor: 1, framing: NoBody, cl: -1, keepAlive: true},
		{name: "connection close", head: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", method: "GET",
			status: 200, minor: 1, fields: "content-length=0;", framing: ContentLength, cl: 0},
		{name: "http/1.0 keep-alive", head: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", method: "GET",
			status: 200, minor: 0, fields: "content-length=1;", framing: ContentLength, cl: 1, keepAlive: true},
		{name: "http/1.0 default close", head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", method: "GET",
			status: 200, minor: 0, fields: "content-length=1;", framing: ContentLength, cl: 1},
		{name: "empty reason", head: "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n", method: "GET",
			status: 299, minor: 1, fields: "content-length=0;", framing: ContentLength, cl: 0, keepAlive: true},
		{name: "no reason no space", head: "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", method: "GET",
			status: 404, minor: 1, fields: "content-length=0;", framing: ContentLength, cl: 0, keepAlive: true},
		{name: "hop-by-hop removed", head: "HTTP/1.1 200 OK\r\nConnection: x-a\r\nX-A: 1\r\nKeep-Alive: t=1\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n", method: "GET",
			status: 200, minor: 1, fields: "x-b=2;content-length=0;", framing: ContentLength, cl: 0, keepAlive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := NewReader(strings.NewReader(tt.head))
			resp := new(Response)
			if err := rd.ReadResponse(resp, []byte(tt.method), nil); err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			if resp.Headers.Status != tt.status || resp.Major != 1 || resp.Minor != tt.minor {
				t.Errorf("status %d version %d.%d, want %d 1.%d", resp.Headers.Status, resp.Major, resp.Minor, tt.status, tt.minor)
			}
			var b strings.Builder
			for _, f := range resp.Headers.Fields {
				b.WriteString(string(f.Name) + "=" + string(f.Value) + ";")
			}
			if b.String() != tt.fields {
				t.Errorf("fields %q, want %q", b.String(), tt.fields)
			}
			if resp.Framing != tt.framing || resp.ContentLength != tt.cl {
				t.Errorf("framing %v %d, want %v %d", resp.Framing, resp.ContentLength, tt.framing, tt.cl)
			}
			if resp.KeepAlive != tt.keepAlive {
				t.Errorf("keep-alive %v, want %v", resp.KeepAlive, tt.keepAlive)
			}
			if string(resp.Upgrade) != tt.upgrade {
				t.Errorf("upgrade %q, want %q", resp.Upgrade, tt.upgrade)
			}
		})
	}
}

func TestReadResponseMalformed(t *testing.T) {
	tests := []struct {
		name string
		head string
		lim  *Limits
	}{
		{"status two digits", "HTTP/1.1 20 OK\r\n\r\n", nil},
		{"status four digits", "HTTP/1.1 2000 OK\r\n\r\n", nil},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n", nil},
		{"status 600", "HTTP/1.1 600 X\r\n\r\n", nil},
		{"status letters", "HTTP/1.1 2x0 OK\r\n\r\n", nil},
		{"version 2", "HTTP/2.0 200 OK\r\n\r\n", nil},
		{"version garbage", "HTTX/1.1 200 OK\r\n\r\n", nil},
		{"no space after version", "HTTP/1.1\t200 OK\r\n\r\n", nil},
		{"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", nil},
		{"content-length and transfer-encoding", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", nil},
		{"content-length repeated", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", nil},
		{"transfer-encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", nil},
		{"transfer-encoding on 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", nil},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", nil},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", nil},
		{"space before colon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", nil},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n", nil},
		{"status line too long", "HTTP/1.1 200 " + strings.Repeat("x", 100) + "\r\n\r\n", &Limits{MaxLineBytes: 50}},
		{"head too large", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("x", 100) + "\r\n\r\n", &Limits{MaxHeaderBytes: 50}},
		{"too many fields", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 1\r\n\r\n", &Limits{MaxHeaders: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := NewReader(strings.NewReader(tt.head))
			err := rd.ReadResponse(new(Response), []byte("GET"), tt.lim)
			var e *Error
			if !errors.As(err, &e) || e.Status != 502 {
				t.Fatalf("got %v, want *Error with status 502", err)
			}
		})
	}
}
