package compressor

import (
	"bytes"
	"compress/gzip"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Stats are the filter's counters, Envoy's
// http.<stat_prefix>.compressor.<name>.gzip.*.
type Stats struct {
	// Compressed and NotCompressed count the responses whose type the
	// filter compresses, by outcome.
	Compressed, NotCompressed *stats.Counter
	// NoAcceptHeader, HeaderIdentity, HeaderGzip, HeaderWildcard and
	// HeaderNotValid say what the request's Accept-Encoding chose: nothing,
	// identity, gzip by name, gzip through "*", or nothing it could parse.
	NoAcceptHeader, HeaderIdentity, HeaderGzip, HeaderWildcard, HeaderNotValid *stats.Counter
	// ContentLengthTooSmall and NotCompressedEtag count responses left
	// alone for their length or, with disable_on_etag_header, their ETag.
	ContentLengthTooSmall, NotCompressedEtag *stats.Counter
	// TotalUncompressedBytes and TotalCompressedBytes are the body bytes
	// of the compressed responses, before and after.
	TotalUncompressedBytes, TotalCompressedBytes *stats.Counter
}

// Factory is a built compressor. It is immutable (but for its stats) and
// safe for concurrent use.
type Factory struct {
	minLength     int64
	types         []string
	level         int
	disableOnEtag bool
	removeAccept  bool
	stats         Stats
}

// Stats returns the factory's counters.
func (fa *Factory) Stats() *Stats { return &fa.stats }

// NewFilter implements httpfilter.Factory.
func (fa *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{fa: fa}
}

// writers pools gzip writers by level (1 … 9, and -1 at 0): a writer holds
// several hundred KiB of tables, too much to allocate per response.
var writers [10]sync.Pool

func poolOf(level int) *sync.Pool {
	if level < 0 {
		return &writers[0]
	}
	return &writers[level]
}

// acceptance is what a request's Accept-Encoding says about gzip.
type acceptance uint8

const (
	acceptNone     acceptance = iota // no Accept-Encoding
	acceptIdentity                   // gzip not acceptable, or identity preferred
	acceptGzip                       // gzip by name
	acceptWildcard                   // gzip through "*"
	acceptInvalid                    // unparsable
)

// filter is one stream's compressor. Its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	fa     *Factory
	accept acceptance
	// zw compresses the response body into out while the response is
	// being compressed; nil otherwise.
	zw  *gzip.Writer
	out []byte
}

var _ httpfilter.DecoderFilter = (*filter)(nil)
var _ httpfilter.EncoderFilter = (*filter)(nil)
var _ httpfilter.BodyEnder = (*filter)(nil)

// Write implements io.Writer for zw: compressed bytes collect in out.
func (f *filter) Write(p []byte) (int, error) {
	f.out = append(f.out, p...)
	return len(p), nil
}

// DecodeHeaders implements httpfilter.DecoderFilter: it reads (and with
// remove_accept_encoding_header removes) the request's Accept-Encoding.
func (f *filter) DecodeHeaders(h *httpfilter.RequestHeaders, endStream bool) httpfilter.HeadersStatus {
	p := newAcceptParser()
	for i := range h.Fields {
		if string(h.Fields[i].Name) == "accept-encoding" {
			p.add(h.Fields[i].Value)
		}
	}
	f.accept = p.result()
	if string(h.Method) == "CONNECT" {
		f.accept = acceptNone // a tunnel's bytes are not a response body
	}
	if f.fa.removeAccept {
		h.Del("accept-encoding")
	}
	return httpfilter.HeadersContinue
}

// DecodeData implements httpfilter.DecoderFilter.
func (f *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (f *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// EncodeHeaders implements httpfilter.EncoderFilter: it decides whether the
// response is compressed, as Envoy's compressor does.
func (f *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, endStream bool) httpfilter.HeadersStatus {
	fa := f.fa
	if endStream || h.Status < 200 || h.Status == 204 || h.Status == 206 || h.Status == 304 || !f.compressible(h) {
		return httpfilter.HeadersContinue
	}
	if cl := h.Get("content-length"); cl != nil {
		if n, err := strconv.ParseInt(string(cl), 10, 64); err == nil && n < fa.minLength {
			fa.stats.ContentLengthTooSmall.Inc()
			return httpfilter.HeadersContinue
		}
	}
	etag := h.Get("etag")
	if etag != nil && fa.disableOnEtag {
		fa.stats.NotCompressedEtag.Inc()
		return httpfilter.HeadersContinue
	}
	addVary(h)
	switch f.accept {
	case acceptNone:
		fa.stats.NoAcceptHeader.Inc()
	case acceptIdentity:
		fa.stats.HeaderIdentity.Inc()
	case acceptInvalid:
		fa.stats.HeaderNotValid.Inc()
	case acceptGzip:
		fa.stats.HeaderGzip.Inc()
	case acceptWildcard:
		fa.stats.HeaderWildcard.Inc()
	}
	if f.accept != acceptGzip && f.accept != acceptWildcard {
		fa.stats.NotCompressed.Inc()
		return httpfilter.HeadersContinue
	}
	fa.stats.Compressed.Inc()
	h.Del("content-length")
	h.Set("content-encoding", "gzip")
	if etag != nil && !bytes.HasPrefix(etag, []byte("W/")) {
		h.Set("etag", "W/"+string(etag))
	}
	zw, _ := poolOf(fa.level).Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(f, fa.level) // the level was checked in Build
	} else {
		zw.Reset(f)
	}
	f.zw = zw
	return httpfilter.HeadersContinue
}

// compressible reports whether the response's own fields allow
// compression: a listed content type, no content coding, no no-transform.
func (f *filter) compressible(h *httpfilter.ResponseHeaders) bool {
	if ce := h.Get("content-encoding"); ce != nil && !strings.EqualFold(string(ce), "identity") {
		return false
	}
	for i := range h.Fields {
		if string(h.Fields[i].Name) == "cache-control" && hasToken(h.Fields[i].Value, "no-transform") {
			return false
		}
	}
	ct := h.Get("content-type")
	if ct == nil {
		return false
	}
	mt, _, _ := bytes.Cut(ct, []byte(";"))
	mt = bytes.TrimSpace(mt)
	for _, t := range f.fa.types {
		if strings.EqualFold(string(mt), t) {
			return true
		}
	}
	return false
}

// EncodeData implements httpfilter.EncoderFilter: it replaces the chunk
// with its compressed form. An empty chunk (the terminal filter is about to
// wait) flushes the compressor, so that a slow stream's bytes are not held.
func (f *filter) EncodeData(b *buffer.Buffer, endStream bool) httpfilter.DataStatus {
	if f.zw == nil {
		return httpfilter.DataContinue
	}
	in := b.Bytes()
	f.out = f.out[:0]
	if len(in) > 0 {
		_, _ = f.zw.Write(in) // writes to f, which cannot fail
		f.fa.stats.TotalUncompressedBytes.Add(uint64(len(in)))
	}
	switch {
	case endStream:
		f.finish()
	case len(in) == 0:
		_ = f.zw.Flush()
	}
	f.fa.stats.TotalCompressedBytes.Add(uint64(len(f.out)))
	b.Set(f.out)
	return httpfilter.DataContinue
}

// EndBody implements httpfilter.BodyEnder: the response ends with
// trailers, so the compressed stream ends before them.
func (f *filter) EndBody(b *buffer.Buffer) {
	if f.zw == nil {
		return
	}
	f.out = f.out[:0]
	f.finish()
	f.fa.stats.TotalCompressedBytes.Add(uint64(len(f.out)))
	b.Append(f.out)
}

// EncodeTrailers implements httpfilter.EncoderFilter.
func (f *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// finish ends the gzip stream into out and returns the writer to its pool.
func (f *filter) finish() {
	_ = f.zw.Close()
	f.release()
}

func (f *filter) release() {
	if f.zw == nil {
		return
	}
	f.zw.Reset(nil)
	poolOf(f.fa.level).Put(f.zw)
	f.zw = nil
}

// OnDestroy implements httpfilter.DecoderFilter.
func (f *filter) OnDestroy() { f.release() }

// acceptParser reads Accept-Encoding field values (RFC 9110 §12.5.3).
type acceptParser struct {
	seen                    bool
	invalid                 bool
	gzipQ, starQ, identityQ int // in thousandths; -1: not named
}

func newAcceptParser() acceptParser { return acceptParser{gzipQ: -1, starQ: -1, identityQ: -1} }

// add reads one field value. It does not allocate: it runs for every
// request.
func (p *acceptParser) add(v []byte) {
	p.seen = true
	for rest := v; len(rest) > 0; {
		var elem []byte
		elem, rest = nextElem(rest)
		coding, params, _ := bytes.Cut(elem, []byte(";"))
		coding = bytes.TrimSpace(coding)
		if len(coding) == 0 {
			continue
		}
		q := 1000
		if params = bytes.TrimSpace(params); len(params) > 0 {
			name, val, ok := bytes.Cut(params, []byte("="))
			if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("q")) {
				p.invalid = true
				return
			}
			if q, ok = parseQ(bytes.TrimSpace(val)); !ok {
				p.invalid = true
				return
			}
		}
		switch {
		case bytes.EqualFold(coding, []byte("gzip")), bytes.EqualFold(coding, []byte("x-gzip")):
			p.gzipQ = q
		case string(coding) == "*":
			p.starQ = q
		case bytes.EqualFold(coding, []byte("identity")):
			p.identityQ = q
		}
	}
}

// parseQ parses an RFC 9110 §12.4.2 qvalue ("0", "0.5", "1.000") into
// thousandths.
func parseQ(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) > 1 {
		if v[1] != '.' {
			return 0, false
		}
		scale := 100
		for _, c := range v[2:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			q += int(c-'0') * scale
			scale /= 10
		}
	}
	return q, q <= 1000
}

// nextElem splits the first element (trimmed) off a comma-separated list.
func nextElem(v []byte) (elem, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return bytes.TrimSpace(v[:i]), v[i+1:]
	}
	return bytes.TrimSpace(v), nil
}

// result says whether gzip is acceptable, and how: gzip named with a
// weight above 0 and not below identity's, or, gzip not named, "*" so.
func (p *acceptParser) result() acceptance {
	switch {
	case !p.seen:
		return acceptNone
	case p.invalid:
		return acceptInvalid
	case p.gzipQ > 0 && p.gzipQ >= p.identityQ:
		return acceptGzip
	case p.gzipQ < 0 && p.starQ > 0 && p.starQ >= p.identityQ:
		return acceptWildcard
	}
	return acceptIdentity
}

// addVary adds accept-encoding to the response's Vary, unless it is there
// or Vary is "*".
func addVary(h *httpfilter.ResponseHeaders) {
	for i := range h.Fields {
		if string(h.Fields[i].Name) != "vary" {
			continue
		}
		if hasToken(h.Fields[i].Value, "accept-encoding") || hasToken(h.Fields[i].Value, "*") {
			return
		}
	}
	h.Add("vary", "accept-encoding") // another Vary field line extends the list
}

// hasToken reports whether the comma-separated list v holds token
// (case-insensitively; parameters after ';' or '=' ignored).
func hasToken(v []byte, token string) bool {
	for rest := v; len(rest) > 0; {
		var e []byte
		e, rest = nextElem(rest)
		if i := bytes.IndexAny(e, "=;"); i >= 0 {
			e = bytes.TrimSpace(e[:i])
		}
		if len(e) == len(token) && bytes.EqualFold(e, []byte(token)) {
			return true
		}
	}
	return false
}
