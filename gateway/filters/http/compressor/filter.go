package compressor

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/coding"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Stats are the filter's counters, Envoy's
// http.<stat_prefix>.compressor.<name>.<library>.*.
type Stats struct {
	// Compressed and NotCompressed count the responses whose type the
	// filter compresses, by outcome.
	Compressed, NotCompressed *stats.Counter
	// NoAcceptHeader, HeaderIdentity, HeaderCompressorUsed,
	// HeaderWildcard, HeaderCompressorOvershadowed and HeaderNotValid say
	// what the request's Accept-Encoding chose: nothing, identity (no
	// compressor of the chain acceptable, or identity preferred), this
	// filter's coding by name, this filter through "*", another compressor
	// of the chain, or nothing it could parse. HeaderGzip counts with
	// HeaderCompressorUsed for the gzip library, as Envoy's older stat.
	NoAcceptHeader, HeaderIdentity, HeaderGzip, HeaderWildcard, HeaderNotValid *stats.Counter
	HeaderCompressorUsed, HeaderCompressorOvershadowed                         *stats.Counter
	// ContentLengthTooSmall and NotCompressedEtag count responses left
	// alone for their length or, with disable_on_etag_header, their ETag.
	ContentLengthTooSmall, NotCompressedEtag *stats.Counter
	// TotalUncompressedBytes and TotalCompressedBytes are the body bytes
	// of the compressed responses, before and after.
	TotalUncompressedBytes, TotalCompressedBytes *stats.Counter
}

// Factory is a built compressor. It is immutable (but for its stats) once
// its chain is built, and safe for concurrent use.
type Factory struct {
	lib           library
	name          string
	minLength     int64
	types         []string
	pool          *encPool
	disableOnEtag bool
	// removeAccept is remove_accept_encoding_header; removeNow says
	// whether this filter removes the field: the last compressor of a
	// chain does, for all of them, so that each reads it first.
	removeAccept, removeNow bool
	stats                   Stats
	// chain holds the compressors of the filter's chain in config order,
	// this one at self; just this one until ChainBuilt.
	chain []*Factory
	self  int
}

var _ httpfilter.ChainAware = (*Factory)(nil)

// Stats returns the factory's counters.
func (fa *Factory) Stats() *Stats { return &fa.stats }

// NewFilter implements httpfilter.Factory.
func (fa *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{fa: fa}
}

// ChainBuilt implements httpfilter.ChainAware: the filter learns the other
// compressors of its chain, among which it chooses the client's preferred
// one for each response. Two compressors of a chain may not share a stats
// scope (the same library and name).
func (fa *Factory) ChainBuilt(chain []httpfilter.Factory) error {
	var cs []*Factory
	remove, found := false, false
	for _, hf := range chain {
		c, ok := hf.(*Factory)
		if !ok {
			continue
		}
		if c == fa {
			fa.self, found = len(cs), true
		}
		cs = append(cs, c)
		remove = remove || c.removeAccept
	}
	if !found {
		return fmt.Errorf("compressor: the chain does not hold this filter")
	}
	for _, c := range cs[:fa.self] {
		if c.lib == fa.lib && c.name == fa.name {
			return registry.Errorf("name", "another %s compressor of this chain is named %q: its stats would be this one's; set a distinct name", fa.lib, fa.name)
		}
	}
	fa.chain = cs
	fa.removeNow = remove && fa.self == len(cs)-1
	return nil
}

// hasType reports whether the filter compresses media type mt (lower or
// mixed case, without parameters).
func (fa *Factory) hasType(mt []byte) bool {
	for _, t := range fa.types {
		if len(t) == len(mt) && strings.EqualFold(string(mt), t) {
			return true
		}
	}
	return false
}

// outcome is what a request's Accept-Encoding chose for a response.
type outcome uint8

const (
	outNone     outcome = iota // no Accept-Encoding
	outIdentity                // no compressor acceptable, or identity preferred
	outNamed                   // a compressor's coding by name
	outWildcard                // a compressor through "*"
	outInvalid                 // unparsable
)

// choose returns which compressor of chain compresses a response of media
// type mt (the index in chain, -1 for none) and why. self, whose media types
// the caller checked, is skipped in that check. The compressor chosen is
// the one whose coding has the highest weight (a coding not named weighs
// what "*" does), ties going to the earliest in the chain; none is chosen
// when every weight is 0 or identity weighs more. Compressors that do not
// compress mt take no part, as in Envoy.
func choose(a *acceptQ, chain []*Factory, self int, mt []byte) (int, outcome) {
	switch {
	case !a.seen:
		return -1, outNone
	case a.invalid:
		return -1, outInvalid
	}
	best, bestQ, wild := -1, int16(0), false
	for i, c := range chain {
		q, named := a.q[c.lib], true
		if q < 0 {
			q, named = a.star, false
		}
		if q <= bestQ || i != self && !c.hasType(mt) {
			continue
		}
		best, bestQ, wild = i, q, !named
	}
	if best < 0 || a.identity > bestQ {
		return -1, outIdentity
	}
	if wild {
		return best, outWildcard
	}
	return best, outNamed
}

// filter is one stream's compressor. Its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	fa     *Factory
	accept acceptQ
	// zw compresses the response body into out while the response is
	// being compressed; nil otherwise.
	zw  encoder
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
	f.accept = newAcceptQ()
	for i := range h.Fields {
		if string(h.Fields[i].Name) == "accept-encoding" {
			f.accept.add(h.Fields[i].Value)
		}
	}
	if string(h.Method) == "CONNECT" {
		f.accept.seen = false // a tunnel's bytes are not a response body
	}
	if f.fa.removeNow {
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
	chosen, out := choose(&f.accept, fa.chain, fa.self, mediaType(h))
	switch {
	case out == outNone:
		fa.stats.NoAcceptHeader.Inc()
	case out == outIdentity:
		fa.stats.HeaderIdentity.Inc()
	case out == outInvalid:
		fa.stats.HeaderNotValid.Inc()
	case chosen != fa.self:
		fa.stats.HeaderCompressorOvershadowed.Inc()
	case out == outWildcard:
		fa.stats.HeaderWildcard.Inc()
	default:
		fa.stats.HeaderCompressorUsed.Inc()
		if fa.lib == coding.Gzip {
			fa.stats.HeaderGzip.Inc()
		}
	}
	if chosen != fa.self {
		fa.stats.NotCompressed.Inc()
		return httpfilter.HeadersContinue
	}
	fa.stats.Compressed.Inc()
	h.Del("content-length")
	h.Set("content-encoding", fa.lib.Coding())
	if etag != nil && !bytes.HasPrefix(etag, []byte("W/")) {
		h.Set("etag", "W/"+string(etag))
	}
	f.zw = fa.pool.get(f)
	return httpfilter.HeadersContinue
}

// mediaType returns the response's media type, without parameters.
func mediaType(h *httpfilter.ResponseHeaders) []byte {
	mt, _, _ := bytes.Cut(h.Get("content-type"), []byte(";"))
	return bytes.TrimSpace(mt)
}

// compressible reports whether the response's own fields allow
// compression: a listed content type, no content coding, no no-transform.
func (f *filter) compressible(h *httpfilter.ResponseHeaders) bool {
	if ce := h.Get("content-encoding"); ce != nil && !strings.EqualFold(string(ce), "identity") {
		return false
	}
	for i := range h.Fields {
		if string(h.Fields[i].Name) == "cache-control" && http1.HasToken(h.Fields[i].Value, "no-transform") {
			return false
		}
	}
	if h.Get("content-type") == nil {
		return false
	}
	return f.fa.hasType(mediaType(h))
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

// finish ends the compressed stream into out and returns the writer to its pool.
func (f *filter) finish() {
	_ = f.zw.Close()
	f.release()
}

func (f *filter) release() {
	if f.zw == nil {
		return
	}
	f.fa.pool.put(f.zw)
	f.zw = nil
}

// OnDestroy implements httpfilter.DecoderFilter.
func (f *filter) OnDestroy() { f.release() }

// acceptQ is what a request's Accept-Encoding field values (RFC 9110
// §12.5.3) say: the weight of each library's coding, of "*" and of
// identity, in thousandths, -1 where not named. A malformed element is
// skipped, as Envoy skips it; the field is invalid when it has malformed
// elements and no well-formed one.
type acceptQ struct {
	seen, invalid  bool
	wellFormed     bool // an element parsed
	q              [coding.NumLibraries]int16
	star, identity int16
}

func newAcceptQ() acceptQ {
	return acceptQ{q: [coding.NumLibraries]int16{-1, -1, -1}, star: -1, identity: -1}
}

// add reads one field value. It does not allocate: it runs for every
// request.
func (p *acceptQ) add(v []byte) {
	p.seen = true
	for rest := v; len(rest) > 0; {
		var elem []byte
		elem, rest = http1.NextElem(rest)
		cc, params, _ := bytes.Cut(elem, []byte(";"))
		cc = bytes.TrimSpace(cc)
		if len(cc) == 0 {
			continue
		}
		q := 1000
		if params = bytes.TrimSpace(params); len(params) > 0 {
			name, val, ok := bytes.Cut(params, []byte("="))
			if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("q")) {
				q, ok = parseQ(bytes.TrimSpace(val))
			} else {
				ok = false
			}
			if !ok {
				// Only the others count: one bad element does not
				// turn compression off for the whole request.
				p.invalid = !p.wellFormed
				continue
			}
		}
		p.wellFormed, p.invalid = true, false
		switch {
		case bytes.EqualFold(cc, []byte("gzip")), bytes.EqualFold(cc, []byte("x-gzip")):
			p.q[coding.Gzip] = int16(q)
		case bytes.EqualFold(cc, []byte("br")):
			p.q[coding.Brotli] = int16(q)
		case bytes.EqualFold(cc, []byte("zstd")):
			p.q[coding.Zstd] = int16(q)
		case string(cc) == "*":
			p.star = int16(q)
		case bytes.EqualFold(cc, []byte("identity")):
			p.identity = int16(q)
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

// addVary adds accept-encoding to the response's Vary, unless it is there
// or Vary is "*".
func addVary(h *httpfilter.ResponseHeaders) {
	for i := range h.Fields {
		if string(h.Fields[i].Name) != "vary" {
			continue
		}
		if http1.HasToken(h.Fields[i].Value, "accept-encoding") || http1.HasToken(h.Fields[i].Value, "*") {
			return
		}
	}
	h.Add("vary", "accept-encoding") // another Vary field line extends the list
}
