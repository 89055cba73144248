package grpcweb

import (
	"bytes"
	"encoding/base64"
	"strconv"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
)

// The gRPC-Web content types (Envoy's ContentTypeValues).
const (
	ctGRPCWeb          = "application/grpc-web"
	ctGRPCWebProto     = "application/grpc-web+proto"
	ctGRPCWebText      = "application/grpc-web-text"
	ctGRPCWebTextProto = "application/grpc-web-text+proto"
)

// Details of the local replies to a grpc-web-text body that is not base64
// (Envoy's).
const (
	detailsBadSize = "grpc_base_64_decode_failed_bad_size"
	detailsBadData = "grpc_base_64_decode_failed"
	badBase64Body  = "Bad gRPC-web request, invalid base64 data."
)

var (
	hdrContentType        = []byte("content-type")
	hdrTE                 = []byte("te")
	hdrGRPCAcceptEncoding = []byte("grpc-accept-encoding")
	hdrContentLength      = []byte("content-length")
	valTrailers           = []byte("trailers")
	valAcceptEncoding     = []byte("identity,deflate,gzip")
	valWebProto           = []byte(ctGRPCWebProto)
	valWebTextProto       = []byte(ctGRPCWebTextProto)
	valZero               = []byte("0")
)

// filter is one stream's instance. Its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	cb httpfilter.DecoderCallbacks
	// web: the request is gRPC-Web; nothing else is touched.
	web bool
	// textReq: the request body is base64 (grpc-web-text); textResp: the
	// client asked (Accept) for a base64 response.
	textReq, textResp bool
	// notGRPC: the response is not gRPC (an HTTP error): its status is in
	// grpc-status and its body is dropped.
	notGRPC bool
	dec     textDecoder
	enc     textEncoder
	// out holds the bytes the filter hands on, in two buffers used in
	// turn: a chunk the manager passes may alias the one handed on last.
	out  [2][]byte
	turn int
}

var (
	_ httpfilter.DecoderFilter  = (*filter)(nil)
	_ httpfilter.EncoderFilter  = (*filter)(nil)
	_ httpfilter.TrailersToBody = (*filter)(nil)
)

// next returns an empty output buffer that the previous output, which the
// next input may alias, does not share.
func (f *filter) next() []byte {
	f.turn ^= 1
	return f.out[f.turn][:0]
}

// keep stores an output buffer for reuse.
func (f *filter) keep(b []byte) []byte {
	if cap(b) <= 64<<10 {
		f.out[f.turn] = b
	}
	return b
}

// DecodeHeaders implements httpfilter.DecoderFilter: a gRPC-Web request,
// by its content-type, becomes a gRPC one as Envoy's filter makes it:
// content-type application/grpc, no content-length (a text body's length
// changes), te: trailers, and grpc-accept-encoding
// "identity,deflate,gzip" unless the client sent one.
func (f *filter) DecodeHeaders(h *httpfilter.RequestHeaders, endStream bool) httpfilter.HeadersStatus {
	switch string(h.Get("content-type")) {
	case ctGRPCWeb, ctGRPCWebProto:
	case ctGRPCWebText, ctGRPCWebTextProto:
		f.textReq = true
	default:
		return httpfilter.HeadersContinue
	}
	if len(h.Path) == 0 {
		return httpfilter.HeadersContinue
	}
	f.web = true
	switch string(h.Get("accept")) {
	case ctGRPCWebText, ctGRPCWebTextProto:
		f.textResp = true
	}
	h.Del("content-length")
	h.SetBytes(hdrContentType, grpcwire.ContentTypeValue)
	h.SetBytes(hdrTE, valTrailers)
	if !h.Has("grpc-accept-encoding") {
		h.AddBytes(hdrGRPCAcceptEncoding, valAcceptEncoding)
	}
	return httpfilter.HeadersContinue
}

// DecodeData implements httpfilter.DecoderFilter: a grpc-web-text body is
// decoded as it arrives. Bytes that are not base64, or a body whose length
// is not a multiple of four, get a local reply 400 (a gRPC INTERNAL
// status: the request is gRPC by now).
func (f *filter) DecodeData(b *buffer.Buffer, endStream bool) httpfilter.DataStatus {
	if !f.web || !f.textReq {
		return httpfilter.DataContinue
	}
	out, err := f.dec.decode(f.next(), b.Bytes())
	out = f.keep(out)
	if err != nil {
		f.cb.SendLocalReply(httpfilter.LocalReply{Status: 400, Body: badBase64Body, Details: detailsBadData})
		return httpfilter.DataStopNoBuffer
	}
	if endStream && f.dec.pending() {
		f.cb.SendLocalReply(httpfilter.LocalReply{Status: 400, Body: badBase64Body, Details: detailsBadSize})
		return httpfilter.DataStopNoBuffer
	}
	b.Set(out)
	if len(out) == 0 && !endStream {
		return httpfilter.DataStopNoBuffer
	}
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (f *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// EncodeHeaders implements httpfilter.EncoderFilter: the response gets the
// gRPC-Web content-type (application/grpc-web-text+proto for a client that
// accepts text, else application/grpc-web+proto) and loses its
// content-length. A response that is neither gRPC nor gRPC-Web, and has a
// body (an HTTP error from an upstream that does not speak gRPC), gets the
// grpc-status its HTTP status maps to and a grpc-message, and its body is
// dropped.
func (f *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, endStream bool) httpfilter.HeadersStatus {
	if !f.web {
		return httpfilter.HeadersContinue
	}
	ct := h.Get("content-type")
	grpc := endStream && h.Has("grpc-status") ||
		h.Status == 200 && (grpcwire.IsGRPC(ct) || isGRPCWebProto(ct))
	h.Del("content-length")
	if f.textResp {
		h.SetBytes(hdrContentType, valWebTextProto)
	} else {
		h.SetBytes(hdrContentType, valWebProto)
	}
	if grpc || endStream {
		return httpfilter.HeadersContinue
	}
	// Envoy holds the body back to make it the grpc-message; here the
	// head goes out before the body is seen, so the message is the
	// status's text.
	f.notGRPC = true
	h.SetBytes(grpcwire.StatusHeader, strconv.AppendInt(nil, int64(grpcwire.FromHTTP(h.Status)), 10))
	h.SetBytes(grpcwire.MessageHeader, grpcwire.AppendMessage(nil, http1.StatusText(h.Status)))
	h.SetBytes(hdrContentLength, valZero)
	return httpfilter.HeadersContinue
}

// isGRPCWebProto reports whether a response content-type (parameters
// ignored, case-insensitively) is already a binary gRPC-Web one.
func isGRPCWebProto(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimRight(ct, " \t")
	return bytes.EqualFold(ct, []byte(ctGRPCWeb)) || bytes.EqualFold(ct, []byte(ctGRPCWebProto))
}

// EncodeData implements httpfilter.EncoderFilter: for a text client the
// body is base64-encoded frame by frame.
func (f *filter) EncodeData(b *buffer.Buffer, endStream bool) httpfilter.DataStatus {
	switch {
	case !f.web:
	case f.notGRPC:
		b.Reset()
	case f.textResp:
		out := f.enc.encode(f.next(), b.Bytes())
		if endStream {
			out = f.enc.flush(out)
		}
		b.Set(f.keep(out))
	}
	return httpfilter.DataContinue
}

// EncodeTrailers implements httpfilter.EncoderFilter; the manager calls
// EncodeTrailersToBody instead.
func (f *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// EncodeTrailersToBody implements httpfilter.TrailersToBody: the
// trailers of a gRPC-Web response become its last body frame (base64 for a
// text client), and the response has no trailers section.
func (f *filter) EncodeTrailersToBody(t *httpfilter.Headers, b *buffer.Buffer) {
	if !f.web {
		return
	}
	if f.notGRPC {
		t.Reset()
		return
	}
	out := f.next()
	if f.textResp {
		out = f.enc.flush(out) // what came of a frame the upstream cut short
		frame := appendTrailerFrame(nil, t)
		out = base64.StdEncoding.AppendEncode(out, frame)
	} else {
		out = appendTrailerFrame(out, t)
	}
	t.Reset()
	b.Append(f.keep(out))
}

// OnDestroy implements httpfilter.DecoderFilter.
func (f *filter) OnDestroy() {}
