package http1

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// bigLimits lets a re-serialized head (which may be a little longer than
// the original) parse again.
var bigLimits = &Limits{MaxHeaderBytes: 1 << 20, MaxHeaders: 10000, MaxLineBytes: 1 << 20}

var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}

// checkFields asserts the field invariants every parsed head satisfies.
func checkFields(t *testing.T, h *httpfilter.Headers) {
	t.Helper()
	for _, f := range h.Fields {
		if !validToken(f.Name) || !bytes.Equal(f.Name, bytes.ToLower(f.Name)) {
			t.Fatalf("field name %q not a lowercase token", f.Name)
		}
		if !validValue(f.Value) || !bytes.Equal(f.Value, trimOWS(f.Value)) {
			t.Fatalf("field %q value %q invalid or untrimmed", f.Name, f.Value)
		}
		for _, n := range hopByHop {
			if string(f.Name) == n {
				t.Fatalf("hop-by-hop field %q kept", n)
			}
		}
		if string(f.Name) == "te" && string(f.Value) != "trailers" {
			t.Fatalf("te %q kept", f.Value)
		}
	}
}

// sameFields compares two field lists, ignoring Content-Length: the
// serializers write it from the framing arguments, not from Fields.
func sameFields(a, b *httpfilter.Headers) bool {
	fa, fb := withoutLength(a.Fields), withoutLength(b.Fields)
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if !bytes.Equal(fa[i].Name, fb[i].Name) || !bytes.Equal(fa[i].Value, fb[i].Value) {
			return false
		}
	}
	return true
}

func withoutLength(fs []httpfilter.Field) []httpfilter.Field {
	var out []httpfilter.Field
	for _, f := range fs {
		if string(f.Name) != "content-length" {
			out = append(out, f)
		}
	}
	return out
}

func checkHeadError(t *testing.T, err error, statuses ...int) {
	t.Helper()
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	for _, s := range statuses {
		if e.Status == s {
			return
		}
	}
	t.Fatalf("unexpected status %d: %v", e.Status, err)
}

func FuzzRequestHead(f *testing.F) {
	f.Add([]byte(browserGET))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := NewReader(bytes.NewReader(data))
		var req Request
		if err := rd.ReadRequest(&req, nil); err != nil {
			checkHeadError(t, err, 400, 414, 431, 501, 505)
			return
		}
		h := &req.Headers
		if !validToken(h.Method) || req.Major != 1 || req.Minor > 1 {
			t.Fatalf("bad method %q or version %d.%d", h.Method, req.Major, req.Minor)
		}
		if req.Minor == 1 && len(h.Authority) == 0 {
			t.Fatal("HTTP/1.1 request accepted without authority")
		}
		if (req.Framing == ContentLength) != (req.ContentLength >= 0) || req.Framing == UntilClose {
			t.Fatalf("framing %v with content-length %d", req.Framing, req.ContentLength)
		}
		checkFields(t, &h.Headers)
		if len(h.Authority) == 0 {
			return
		}
		// Re-serialize and re-parse: the result must be the same request.
		out := AppendRequestHead(nil, h, req.Framing, req.ContentLength, req.KeepAlive)
		rd2 := NewReader(bytes.NewReader(out))
		var req2 Request
		if err := rd2.ReadRequest(&req2, bigLimits); err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		h2 := &req2.Headers
		if !bytes.Equal(h.Method, h2.Method) || !bytes.Equal(h.Path, h2.Path) || !bytes.Equal(h.Authority, h2.Authority) {
			t.Fatalf("round trip changed %q %q %q to %q %q %q", h.Method, h.Path, h.Authority, h2.Method, h2.Path, h2.Authority)
		}
		if !sameFields(&h.Headers, &h2.Headers) {
			t.Fatalf("round trip changed fields: %q", out)
		}
		if req.Framing != req2.Framing || req.ContentLength != req2.ContentLength || req.KeepAlive != req2.KeepAlive {
			t.Fatalf("round trip changed framing %v/%d/%v to %v/%d/%v", req.Framing, req.ContentLength, req.KeepAlive,
				req2.Framing, req2.ContentLength, req2.KeepAlive)
		}
	})
}

func FuzzResponseHead(f *testing.F) {
	f.Add([]byte(typicalResponse), false)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := []byte("GET")
		if head {
			method = []byte("HEAD")
		}
		rd := NewReader(bytes.NewReader(data))
		var resp Response
		if err := rd.ReadResponse(&resp, method, nil); err != nil {
			checkHeadError(t, err, 502)
			return
		}
		h := &resp.Headers
		if h.Status < 100 || h.Status > 599 || resp.Major != 1 || resp.Minor > 1 {
			t.Fatalf("bad status %d or version %d.%d", h.Status, resp.Major, resp.Minor)
		}
		if resp.Framing == UntilClose && resp.KeepAlive {
			t.Fatal("keep-alive with a body delimited by close")
		}
		checkFields(t, &h.Headers)
		out := AppendResponseHead(nil, 1, 1, h, resp.Framing, resp.ContentLength, resp.KeepAlive)
		rd2 := NewReader(bytes.NewReader(out))
		var resp2 Response
		if err := rd2.ReadResponse(&resp2, method, bigLimits); err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if h.Status != resp2.Headers.Status || !sameFields(&h.Headers, &resp2.Headers.Headers) {
			t.Fatalf("round trip changed the head: %q", out)
		}
		if resp.Framing != resp2.Framing || resp.ContentLength != resp2.ContentLength || resp.KeepAlive != resp2.KeepAlive {
			t.Fatalf("round trip changed framing %v/%d/%v to %v/%d/%v", resp.Framing, resp.ContentLength, resp.KeepAlive,
				resp2.Framing, resp2.ContentLength, resp2.KeepAlive)
		}
	})
}

// decodeChunked decodes data as a chunked body and returns the body, a copy
// of the trailers and the error.
func decodeChunked(src io.Reader) ([]byte, httpfilter.Headers, error) {
	rd := NewReader(src)
	b := rd.BodyReader(Chunked, -1)
	body, err := io.ReadAll(b)
	var tr httpfilter.Headers
	if h := b.Trailers(); h != nil {
		for _, f := range h.Fields {
			tr.Add(string(f.Name), string(f.Value))
		}
	}
	return body, tr, err
}

func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		body, tr, err := decodeChunked(bytes.NewReader(data))
		body1, tr1, err1 := decodeChunked(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err1 == nil) || !bytes.Equal(body, body1) || !sameFields(&tr, &tr1) {
			t.Fatalf("whole and 1-byte reads differ: %v / %v", err, err1)
		}
		if err != nil {
			checkHeadError(t, err, 400, 431)
			return
		}
		checkFields(t, &tr)
		enc := AppendChunk(nil, body)
		enc = AppendLastChunk(enc, &tr)
		body2, tr2, err := decodeChunked(bytes.NewReader(enc))
		if err != nil || !bytes.Equal(body, body2) || !sameFields(&tr, &tr2) {
			t.Fatalf("re-encoded body does not decode the same: %v", err)
		}
	})
}
