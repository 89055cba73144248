package grpcweb

import (
	"encoding/base64"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// callbacks records the local replies a filter sends.
type callbacks struct {
	httpfilter.DecoderCallbacks
	replies []httpfilter.LocalReply
}

func (c *callbacks) SendLocalReply(r httpfilter.LocalReply) { c.replies = append(c.replies, r) }

func newStream(ct, accept string) (*filter, *callbacks, *httpfilter.RequestHeaders) {
	cb := &callbacks{}
	f := Factory{}.NewFilter(cb).(*filter)
	h := &httpfilter.RequestHeaders{Method: []byte("POST"), Path: []byte("/pkg.Svc/M")}
	h.Add("content-type", ct)
	h.Add("content-length", "12")
	if accept != "" {
		h.Add("accept", accept)
	}
	f.DecodeHeaders(h, false)
	return f, cb, h
}

func TestRequestHeadersBecomeGRPC(t *testing.T) {
	for _, ct := range []string{ctGRPCWeb, ctGRPCWebProto, ctGRPCWebText, ctGRPCWebTextProto} {
		f, _, h := newStream(ct, "")
		if !f.web || string(h.Get("content-type")) != "application/grpc" || h.Has("content-length") ||
			string(h.Get("te")) != "trailers" || string(h.Get("grpc-accept-encoding")) != "identity,deflate,gzip" {
			t.Errorf("%s: %q", ct, h.Fields)
		}
	}
	for _, ct := range []string{"application/grpc", "application/grpc-web+json", "text/plain", "Application/grpc-web"} {
		f, _, h := newStream(ct, "")
		if f.web || string(h.Get("content-type")) != ct || !h.Has("content-length") || h.Has("te") {
			t.Errorf("%s was translated: %q", ct, h.Fields)
		}
	}
}

func TestResponseContentTypeFollowsAccept(t *testing.T) {
	for accept, want := range map[string]string{
		"": ctGRPCWebProto, ctGRPCWebText: ctGRPCWebTextProto, ctGRPCWebTextProto: ctGRPCWebTextProto, "*/*": ctGRPCWebProto,
	} {
		f, _, _ := newStream(ctGRPCWebText, accept)
		rh := &httpfilter.ResponseHeaders{Status: 200}
		rh.Add("content-type", "application/grpc")
		rh.Add("content-length", "9")
		f.EncodeHeaders(rh, false)
		if string(rh.Get("content-type")) != want || rh.Has("content-length") || rh.Has("grpc-status") {
			t.Errorf("accept %q: %q", accept, rh.Fields)
		}
	}
}

func TestTextResponseAndTrailersFrame(t *testing.T) {
	f, _, _ := newStream(ctGRPCWebText, ctGRPCWebText)
	rh := &httpfilter.ResponseHeaders{Status: 200}
	rh.Add("content-type", "application/grpc")
	f.EncodeHeaders(rh, false)
	msg := frame(0, "abcd")
	var got []byte
	for _, piece := range [][]byte{msg[:2], msg[2:7], msg[7:]} {
		b := buffer.New(append([]byte(nil), piece...))
		f.EncodeData(b, false)
		got = append(got, b.Bytes()...)
	}
	tr := &httpfilter.Headers{}
	tr.Add("grpc-status", "0")
	var tail buffer.Buffer
	f.EncodeTrailersToBody(tr, &tail)
	got = append(got, tail.Bytes()...)
	want := base64.StdEncoding.EncodeToString(msg) + base64.StdEncoding.EncodeToString(frame(0x80, "grpc-status:0\r\n"))
	if string(got) != want || tr.Len() != 0 {
		t.Fatalf("got %q (trailers left %q), want %q", got, tr.Fields, want)
	}
}

func TestBadBase64GetsALocalReply(t *testing.T) {
	f, cb, _ := newStream(ctGRPCWebText, "")
	if st := f.DecodeData(buffer.New([]byte("AAAA*AAA")), false); st != httpfilter.DataStopNoBuffer ||
		len(cb.replies) != 1 || cb.replies[0].Status != 400 || cb.replies[0].Details != detailsBadData {
		t.Fatalf("bad data: %v, %+v", st, cb.replies)
	}
	f, cb, _ = newStream(ctGRPCWebText, "")
	if st := f.DecodeData(buffer.New([]byte("AAA")), false); st != httpfilter.DataStopNoBuffer || len(cb.replies) != 0 {
		t.Fatalf("three characters: %v, %+v; want them held", st, cb.replies)
	}
	if f.DecodeData(buffer.New([]byte("AA")), true); len(cb.replies) != 1 || cb.replies[0].Details != detailsBadSize {
		t.Fatalf("five characters in all: %+v", cb.replies)
	}
}

func TestNonGRPCResponseGetsAGRPCStatus(t *testing.T) {
	f, _, _ := newStream(ctGRPCWeb, "")
	rh := &httpfilter.ResponseHeaders{Status: 503}
	rh.Add("content-type", "text/html")
	f.EncodeHeaders(rh, false)
	if string(rh.Get("grpc-status")) != "14" || string(rh.Get("grpc-message")) != "Service Unavailable" ||
		string(rh.Get("content-length")) != "0" || rh.Status != 503 {
		t.Fatalf("head: %d %q", rh.Status, rh.Fields)
	}
	b := buffer.New([]byte("<html>"))
	f.EncodeData(b, true)
	if b.Len() != 0 {
		t.Fatalf("body %q kept", b.Bytes())
	}
}
