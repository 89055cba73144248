package http1

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// fieldsString renders fields as "name=value;" pairs for comparisons.
func fieldsString(req *Request) string {
	var b strings.Builder
	for _, f := range req.Headers.Fields {
		b.WriteString(string(f.Name) + "=" + string(f.Value) + ";")
	}
	return b.String()
}

func readRequest(t *testing.T, head string, lim *Limits) (*Request, error) {
	t.Helper()
	rd := NewReader(strings.NewReader(head))
	req := new(Request)
	return req, rd.ReadRequest(req, lim)
}

func TestReadRequestValid(t *testing.T) {
	tests := []struct {
		name      string
		head      string
		method    string
		authority string
		path      string
		fields    string
		minor     int
		framing   Framing
		cl        int64
		keepAlive bool
		expect    bool
		upgrade   string
		absolute  bool
	}{
		{name: "simple get", head: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
			method: "GET", authority: "example.com", path: "/", minor: 1, cl: -1, keepAlive: true},
		{name: "browser get", head: "GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: x/1\r\nAccept: */*\r\nCookie: a=b; c=d\r\n\r\n",
			method: "GET", authority: "example.com:8080", path: "/a/b?c=d&e", fields: "user-agent=x/1;accept=*/*;cookie=a=b; c=d;", minor: 1, cl: -1, keepAlive: true},
		{name: "names lowercased and values trimmed", head: "GET / HTTP/1.1\r\nHOST: h\r\nX-Foo:   bar baz \t\r\nX-Empty:\r\n\r\n",
			method: "GET", authority: "h", path: "/", fields: "x-foo=bar baz;x-empty=;", minor: 1, cl: -1, keepAlive: true},
		{name: "obs-text value", head: "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xe9\r\n\r\n",
			method: "GET", authority: "h", path: "/", fields: "x=caf\xe9;", minor: 1, cl: -1, keepAlive: true},
		{name: "one leading empty line", head: "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", authority: "h", path: "/", minor: 1, cl: -1, keepAlive: true},
		{name: "content-length", head: "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n",
			method: "POST", authority: "h", path: "/u", fields: "content-length=42;", minor: 1, framing: ContentLength, cl: 42, keepAlive: true},
		{name: "content-length zero", head: "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			method: "POST", authority: "h", path: "/u", fields: "content-length=0;", minor: 1, framing: ContentLength, cl: 0, keepAlive: true},
		{name: "chunked", head: "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			method: "POST", authority: "h", path: "/u", minor: 1, framing: Chunked, cl: -1, keepAlive: true},
		{name: "chunked case-insensitive", head: "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
			method: "POST", authority: "h", path: "/u", minor: 1, framing: Chunked, cl: -1, keepAlive: true},
		{name: "connection close", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
			method: "GET", authority: "h", path: "/", minor: 1, cl: -1},
		{name: "http/1.0 default close", head: "GET / HTTP/1.0\r\n\r\n",
			method: "GET", path: "/", minor: 0, cl: -1},
		{name: "http/1.0 keep-alive", head: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nHost: h\r\n\r\n",
			method: "GET", authority: "h", path: "/", minor: 0, cl: -1, keepAlive: true},
		{name: "hop-by-hop removed", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-hop, Keep-Alive\r\nX-Hop: 1\r\nX-Keep: 2\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nKeep-Alive: 5\r\n\r\n",
			method: "GET", authority: "h", path: "/", fields: "x-keep=2;", minor: 1, cl: -1, keepAlive: true},
		{name: "te trailers kept", head: "GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
			method: "GET", authority: "h", path: "/", fields: "te=trailers;", minor: 1, cl: -1, keepAlive: true},
		{name: "expect continue", head: "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
			method: "PUT", authority: "h", path: "/", fields: "content-length=3;", minor: 1, framing: ContentLength, cl: 3, keepAlive: true, expect: true},
		{name: "websocket upgrade", head: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
			method: "GET", authority: "h", path: "/ws", fields: "sec-websocket-key=k;", minor: 1, cl: -1, keepAlive: true, upgrade: "websocket"},
		{name: "HTTP/1.0 upgrade is ignored", head: "GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			method: "GET", path: "/ws", minor: 0, cl: -1},
		{name: "upgrade without connection option", head: "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
			method: "GET", authority: "h", path: "/ws", minor: 1, cl: -1, keepAlive: true},
		{name: "absolute-form", head: "GET http://Example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
			method: "GET", authority: "Example.com:81", path: "/p?q", minor: 1, cl: -1, keepAlive: true, absolute: true},
		{name: "absolute-form empty path", head: "GET https://e.com HTTP/1.1\r\nHost: e.com\r\n\r\n",
			method: "GET", authority: "e.com", path: "/", minor: 1, cl: -1, keepAlive: true, absolute: true},
		{name: "absolute-form query only", head: "GET http://e.com?x=1 HTTP/1.1\r\nHost: e.com\r\n\r\n",
			method: "GET", authority: "e.com", path: "/?x=1", minor: 1, cl: -1, keepAlive: true, absolute: true},
		{name: "absolute-form options", head: "OPTIONS http://e.com HTTP/1.1\r\nHost: e.com\r\n\r\n",
			method: "OPTIONS", authority: "e.com", path: "*", minor: 1, cl: -1, keepAlive: true, absolute: true},
		{name: "asterisk-form", head: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "OPTIONS", authority: "h", path: "*", minor: 1, cl: -1, keepAlive: true},
		{name: "authority-form", head: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			method: "CONNECT", authority: "example.com:443", minor: 1, cl: -1, keepAlive: true},
		{name: "ipv6 host", head: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
			method: "GET", authority: "[::1]:8080", path: "/", minor: 1, cl: -1, keepAlive: true},
		{name: "extension method", head: "PROPFIND /d HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "PROPFIND", authority: "h", path: "/d", minor: 1, cl: -1, keepAlive: true},
		{name: "other expect kept", head: "GET / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n",
			method: "GET", authority: "h", path: "/", fields: "expect=foo;", minor: 1, cl: -1, keepAlive: true},
		{name: "repeated field kept in order", head: "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n",
			method: "GET", authority: "h", path: "/", fields: "a=1;b=2;a=3;", minor: 1, cl: -1, keepAlive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := readRequest(t, tt.head, nil)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			h := &req.Headers
			if string(h.Method) != tt.method || string(h.Authority) != tt.authority || string(h.Path) != tt.path {
				t.Errorf("got method %q authority %q path %q, want %q %q %q", h.Method, h.Authority, h.Path, tt.method, tt.authority, tt.path)
			}
			if h.Scheme != nil {
				t.Errorf("scheme set by parser: %q", h.Scheme)
			}
			if got := fieldsString(req); got != tt.fields {
				t.Errorf("fields %q, want %q", got, tt.fields)
			}
			if req.Major != 1 || req.Minor != tt.minor {
				t.Errorf("version %d.%d, want 1.%d", req.Major, req.Minor, tt.minor)
			}
			if req.Framing != tt.framing || req.ContentLength != tt.cl {
				t.Errorf("framing %v %d, want %v %d", req.Framing, req.ContentLength, tt.framing, tt.cl)
			}
			if req.KeepAlive != tt.keepAlive {
				t.Errorf("keep-alive %v, want %v", req.KeepAlive, tt.keepAlive)
			}
			if req.ExpectContinue != tt.expect {
				t.Errorf("expect-continue %v, want %v", req.ExpectContinue, tt.expect)
			}
			if string(req.Upgrade) != tt.upgrade {
				t.Errorf("upgrade %q, want %q", req.Upgrade, tt.upgrade)
			}
			if req.AbsoluteForm != tt.absolute {
				t.Errorf("absolute-form %v, want %v", req.AbsoluteForm, tt.absolute)
			}
		})
	}
}

func TestReadRequestMalformed(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		name   string
		head   string
		lim    *Limits
		status int
	}{
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 400},
		{"transfer-encoding and content-length", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", nil, 400},
		{"content-length repeated equal", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", nil, 400},
		{"content-length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n", nil, 400},
		{"content-length sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", nil, 400},
		{"content-length negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", nil, 400},
		{"content-length hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", nil, 400},
		{"content-length empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", nil, 400},
		{"content-length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", nil, 400},
		{"transfer-encoding gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", nil, 501},
		{"transfer-encoding gzip chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", nil, 501},
		{"transfer-encoding chunked not final", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", nil, 501},
		{"transfer-encoding identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", nil, 501},
		{"transfer-encoding chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", nil, 400},
		{"transfer-encoding chunked twice in two fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 400},
		{"transfer-encoding empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", nil, 400},
		{"transfer-encoding garbage", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", nil, 400},
		{"transfer-encoding on http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", nil, 400},
		{"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"bare CR in name", "GET / HTTP/1.1\r\nHost: h\r\nX\r: a\r\n\r\n", nil, 400},
		{"bare CR before CRLF", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", nil, 400},
		{"bare LF after request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", nil, 400},
		{"bare LF after field", "GET / HTTP/1.1\r\nHost: h\n\r\n", nil, 400},
		{"bare LF end of head", "GET / HTTP/1.1\r\nHost: h\r\n\n", nil, 400},
		{"obs-fold space", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", nil, 400},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", nil, 400},
		{"whitespace before colon", "GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n", nil, 400},
		{"tab before colon", "GET / HTTP/1.1\r\nHost: h\r\nX\t: a\r\n\r\n", nil, 400},
		{"empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", nil, 400},
		{"non-token field name", "GET / HTTP/1.1\r\nHost: h\r\nX(y): a\r\n\r\n", nil, 400},
		{"field without colon", "GET / HTTP/1.1\r\nHost: h\r\nX\r\n\r\n", nil, 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", nil, 400},
		{"CTL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", nil, 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", nil, 400},
		{"missing host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", nil, 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", nil, 400},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", nil, 400},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", nil, 400},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", nil, 400},
		{"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", nil, 400},
		{"host with bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", nil, 400},
		{"absolute-form without host", "GET http://a/ HTTP/1.1\r\n\r\n", nil, 400},
		{"absolute-form userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"absolute-form empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"absolute-form other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"invalid method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"authority-form for GET", "GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"origin-form for CONNECT", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"CONNECT without port", "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"asterisk for GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"tab in target", "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"control in target", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"non-ascii in target", "GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", nil, 505},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", nil, 505},
		{"http/0.9 style", "GET /\r\n\r\n", nil, 400},
		{"lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"version garbage", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", nil, 400},
		{"trailing space after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", nil, 400},
		{"two leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"leading bare LF", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 400},
		{"connection option not a token", "GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n", nil, 400},
		{"request line too long", "GET /" + long + " HTTP/1.1\r\nHost: h\r\n\r\n", &Limits{MaxLineBytes: 64}, 414},
		{"request line too long unterminated", "GET /" + long + long, &Limits{MaxLineBytes: 64}, 414},
		{"head too large", "GET / HTTP/1.1\r\nHost: h\r\nX: " + long + "\r\n\r\n", &Limits{MaxHeaderBytes: 64}, 431},
		{"head too large unterminated", "GET / HTTP/1.1\r\nHost: h\r\nX: " + long + long, &Limits{MaxHeaderBytes: 64}, 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &Limits{MaxHeaders: 3}, 431},
		{"head too large default", "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 70<<10) + "\r\n\r\n", nil, 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readRequest(t, tt.head, tt.lim)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Error with status %d", err, tt.status)
			}
			if e.Status != tt.status {
				t.Fatalf("got status %d (%v), want %d", e.Status, err, tt.status)
			}
			if !strings.HasPrefix(err.Error(), "http1: ") {
				t.Errorf("error %q lacks the http1 prefix", err)
			}
		})
	}
}

func TestReadRequestLimitsExact(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n"
	t.Run("head exactly at limit", func(t *testing.T) {
		if _, err := readRequest(t, head, &Limits{MaxHeaderBytes: len(head)}); err != nil {
			t.Fatal(err)
		}
		_, err := readRequest(t, head, &Limits{MaxHeaderBytes: len(head) - 1})
		var e *Error
		if !errors.As(err, &e) || e.Status != 431 {
			t.Fatalf("one byte over: got %v, want 431", err)
		}
	})
	t.Run("fields exactly at limit", func(t *testing.T) {
		if _, err := readRequest(t, head, &Limits{MaxHeaders: 2}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("request line exactly at limit", func(t *testing.T) {
		if _, err := readRequest(t, head, &Limits{MaxLineBytes: len("GET / HTTP/1.1")}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReadRequestEOF(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"nothing", "", io.EOF},
		{"one empty line", "\r\n", io.EOF},
		{"partial request line", "GET / HT", io.ErrUnexpectedEOF},
		{"partial head", "GET / HTTP/1.1\r\nHost: h\r\n", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readRequest(t, tt.in, nil)
			if err != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
