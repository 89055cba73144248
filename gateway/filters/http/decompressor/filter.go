package decompressor

import (
	"bytes"
	"errors"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// dirConfig is one direction's settings and Envoy's counters.
type dirConfig struct {
	enabled, ignoreNoTransform         bool
	decompressed, notDecompressed      *stats.Counter
	uncompressedBytes, compressedBytes *stats.Counter
}

// Factory is a built decompressor. It is immutable (but for its stats) and
// safe for concurrent use.
type Factory struct {
	lib                         library
	coding                      string
	ratio                       int64
	req, resp                   dirConfig
	advertise                   bool
	decodeErrors, ratioExceeded *stats.Counter
}

// NewFilter implements httpfilter.Factory.
func (fa *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{fa: fa, cb: cb}
}

// The %RESPONSE_CODE_DETAILS% of streams the filter ends.
const (
	DetailsError = "decompressor_error"
	DetailsRatio = "decompressor_inflate_ratio_exceeded"
)

// filter is one stream's decompressor: an inflater per direction while
// that direction's body is being decompressed. Its methods run on the
// stream's goroutine, one at a time.
type filter struct {
	fa        *Factory
	cb        httpfilter.DecoderCallbacks
	req, resp *inflater
}

var (
	_ httpfilter.DecoderFilter = (*filter)(nil)
	_ httpfilter.EncoderFilter = (*filter)(nil)
	_ httpfilter.BodyEnder     = (*filter)(nil)
)

// DecodeHeaders implements httpfilter.DecoderFilter: it advertises the
// library's coding upstream and decides whether the request body is
// decompressed, as Envoy's decompressor does.
func (f *filter) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	fa := f.fa
	if fa.resp.enabled && fa.advertise {
		advertise(&h.Headers, fa.coding)
	}
	if end {
		return httpfilter.HeadersContinue
	}
	if f.decompresses(&fa.req, &h.Headers) {
		f.req = newInflater(fa.lib, fa.ratio)
	}
	return httpfilter.HeadersContinue
}

// decompresses decides for one direction's head and counts the decision;
// when it decompresses, it rewrites the head's framing and coding fields.
func (f *filter) decompresses(d *dirConfig, h *httpfilter.Headers) bool {
	if !d.enabled || !d.ignoreNoTransform && noTransform(h) || !firstCodingIs(h, f.fa.coding) {
		d.notDecompressed.Inc()
		return false
	}
	d.decompressed.Inc()
	h.Del("content-length")
	dropFirstCoding(h)
	return true
}

// DecodeData implements httpfilter.DecoderFilter: the chunk is replaced by
// what it decompresses to. A body that is not a valid stream gets 400, one
// that inflates past max_inflate_ratio 413 (a reset when the response has
// started).
func (f *filter) DecodeData(b *buffer.Buffer, end bool) httpfilter.DataStatus {
	if f.req == nil {
		return httpfilter.DataContinue
	}
	out, ok := f.inflate(f.req, &f.fa.req, b.Bytes(), end)
	if !ok {
		f.fail(f.req, 400, "Bad Request", 413, "Payload Too Large")
		return httpfilter.DataStopNoBuffer
	}
	b.Set(out)
	return httpfilter.DataContinue
}

// inflate feeds in to z and counts; ok is false when the stream failed.
func (f *filter) inflate(z *inflater, d *dirConfig, in []byte, end bool) (out []byte, ok bool) {
	out, _, err := z.feed(in, end)
	d.compressedBytes.Add(uint64(len(in)))
	d.uncompressedBytes.Add(uint64(len(out)))
	return out, err == nil
}

// fail ends the stream after z failed: with the ratio status and body for
// a bomb, the other for a corrupt stream.
// The inflater is dropped first: the local reply's own body runs through
// the encoder filters, this one included.
func (f *filter) fail(z *inflater, status int, body string, ratioStatus int, ratioBody string) {
	z.close()
	if z == f.req {
		f.req = nil
	} else {
		f.resp = nil
	}
	details := DetailsError
	if errors.Is(z.err, ErrRatio) {
		f.fa.ratioExceeded.Inc()
		status, body, details = ratioStatus, ratioBody, DetailsRatio
	} else {
		f.fa.decodeErrors.Inc()
	}
	f.cb.SendLocalReply(httpfilter.LocalReply{Status: status, Body: body + "\n", Details: details})
}

// DecodeTrailers implements httpfilter.DecoderFilter: the body ended, and
// so must its compressed stream.
func (f *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	if f.req == nil {
		return httpfilter.TrailersContinue
	}
	out, _, err := f.req.feed(nil, true)
	if err == nil && len(out) > 0 {
		// Bytes the decoder released only at the end, with no body
		// data left to carry them: the stream was incomplete.
		f.req.err = errors.New("decompressor: compressed stream incomplete before trailers")
		err = f.req.err
	}
	if err != nil {
		f.fail(f.req, 400, "Bad Request", 413, "Payload Too Large")
		return httpfilter.TrailersStopIteration
	}
	return httpfilter.TrailersContinue
}

// EncodeHeaders implements httpfilter.EncoderFilter: it decides whether
// the response body is decompressed.
func (f *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, end bool) httpfilter.HeadersStatus {
	if end {
		return httpfilter.HeadersContinue
	}
	if f.decompresses(&f.fa.resp, &h.Headers) {
		f.resp = newInflater(f.fa.lib, f.fa.ratio)
	}
	return httpfilter.HeadersContinue
}

// EncodeData implements httpfilter.EncoderFilter: the chunk is replaced by
// what it decompresses to; a stream that fails is reset.
func (f *filter) EncodeData(b *buffer.Buffer, end bool) httpfilter.DataStatus {
	if f.resp == nil {
		return httpfilter.DataContinue
	}
	out, ok := f.inflate(f.resp, &f.fa.resp, b.Bytes(), end)
	if !ok {
		f.fail(f.resp, 502, "Bad Gateway", 502, "Bad Gateway")
		b.Reset()
		return httpfilter.DataStopNoBuffer
	}
	b.Set(out)
	return httpfilter.DataContinue
}

// EndBody implements httpfilter.BodyEnder: the response ends with
// trailers, so its compressed stream ends before them.
func (f *filter) EndBody(b *buffer.Buffer) {
	if f.resp == nil {
		return
	}
	out, ok := f.inflate(f.resp, &f.fa.resp, nil, true)
	if !ok {
		f.fail(f.resp, 502, "Bad Gateway", 502, "Bad Gateway")
		return
	}
	b.Append(out)
}

// EncodeTrailers implements httpfilter.EncoderFilter.
func (f *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter: it ends the inflaters'
// goroutines.
func (f *filter) OnDestroy() {
	if f.req != nil {
		f.req.close()
	}
	if f.resp != nil {
		f.resp.close()
	}
}

// noTransform reports whether Cache-Control has no-transform.
func noTransform(h *httpfilter.Headers) bool {
	for i := range h.Fields {
		if string(h.Fields[i].Name) == "cache-control" && http1.HasToken(h.Fields[i].Value, "no-transform") {
			return true
		}
	}
	return false
}

// firstCodingIs reports whether the first coding of Content-Encoding is
// coding (case-insensitively), as Envoy checks it.
func firstCodingIs(h *httpfilter.Headers, coding string) bool {
	v := h.Get("content-encoding")
	if v == nil {
		return false
	}
	first, _ := http1.NextElem(v)
	return bytes.EqualFold(first, []byte(coding))
}

// dropFirstCoding removes the first coding from Content-Encoding, and the
// field when it had just that one.
func dropFirstCoding(h *httpfilter.Headers) {
	_, rest := http1.NextElem(h.Get("content-encoding"))
	rest = bytes.TrimSpace(rest)
	if len(rest) == 0 {
		h.Del("content-encoding")
		return
	}
	h.Set("content-encoding", string(rest))
}

// advertise rewrites Accept-Encoding to end with coding, dropping any
// element that named it already (Envoy's addEncodingToAcceptEncoding).
func advertise(h *httpfilter.Headers, coding string) {
	var b []byte
	for i := range h.Fields {
		if string(h.Fields[i].Name) != "accept-encoding" {
			continue
		}
		for rest := h.Fields[i].Value; len(rest) > 0; {
			var e []byte
			e, rest = http1.NextElem(rest)
			c, _, _ := bytes.Cut(e, []byte(";"))
			if len(e) == 0 || bytes.EqualFold(bytes.TrimSpace(c), []byte(coding)) {
				continue
			}
			b = append(append(b, e...), ',')
		}
	}
	h.Set("accept-encoding", string(append(b, coding...)))
}
