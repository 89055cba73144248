package cache

import (
	"strconv"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// filterStats are the factory's counters (the store has its own).
type filterStats struct {
	hits, misses, bypass, validations, revalidated, notModified *stats.Counter
}

// Factory is a built cache filter and owns the worker's store for its
// connection manager. It is safe for concurrent use.
type Factory struct {
	maxBody     int64
	allowedVary []string
	st          filterStats
	store       *store
	now         func() time.Time // time.Now; tests replace it
}

// ResponseDetails is the %RESPONSE_CODE_DETAILS% of a response served
// from the cache, Envoy's.
const ResponseDetails = "cache.response_from_cache_filter"

// filters recycles stream instances: a stream that the cache does not
// concern then allocates nothing.
var filters = sync.Pool{New: func() any { return new(filter) }}

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	fl := filters.Get().(*filter)
	fl.fa, fl.cb = f, cb
	return fl
}

// The states of a stream's filter.
const (
	stOff        uint8 = iota // nothing to do
	stInvalidate              // an unsafe method: a non-error response invalidates the URL
	stInsert                  // a cacheable miss: the response may be stored
	stValidate                // a conditional request for a stale entry went upstream
	stCollect                 // storing the response's body as it streams
	stServing                 // the response is the filter's own
	stGive                    // a 304 turned into the stored response: its body follows
)

// filter is one stream's instance; its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	fa      *Factory
	cb      httpfilter.DecoderCallbacks
	req     *httpfilter.RequestHeaders
	state   uint8
	auth    bool
	key     []byte // base key of the request
	reqTime time.Time
	old     *entry // the entry being revalidated; the body given after a 304
	ins     *entry // the entry being filled
	vary    []string
	want    int64 // the response's Content-Length, -1 if none

	// Kept across uses of the instance: the head and body buffer of
	// responses served from the store.
	resp    httpfilter.ResponseHeaders
	out     buffer.Buffer
	scratch []byte
	age     [20]byte
}

// chunk is the most body bytes one EncodeData of a stored body carries.
const chunk = 16 << 10

var hdrAge = []byte("age")

func (f *Factory) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// appendBase appends the request's base key: scheme, authority, path and
// query.
func appendBase(b []byte, h *httpfilter.RequestHeaders) []byte {
	b = append(b, h.Scheme...)
	b = append(b, ' ')
	b = append(b, h.Authority...)
	b = append(b, ' ')
	return append(b, h.Path...)
}

// appendVariant appends the values of the request's fields named in vary
// (lowercase names), which select a variant of a URL.
func appendVariant(b []byte, vary []string, h *httpfilter.Headers) []byte {
	for _, n := range vary {
		b = append(b, n...)
		b = append(b, ':')
		first := true
		for i := range h.Fields {
			if string(h.Fields[i].Name) == n {
				if !first {
					b = append(b, ',')
				}
				b = append(b, h.Fields[i].Value...)
				first = false
			}
		}
		b = append(b, '\n')
	}
	return b
}

func isUnsafe(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "DELETE", "PATCH":
		return true
	}
	return false
}

// DecodeHeaders implements httpfilter.DecoderFilter: a GET or HEAD with
// a fresh stored response is answered from the store; a stale one with a
// validator is revalidated upstream; other cacheable GETs are misses whose
// responses may be stored.
func (fl *filter) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	m := h.Method
	get, head := string(m) == "GET", string(m) == "HEAD"
	if !get && !head && !isUnsafe(m) {
		return httpfilter.HeadersContinue
	}
	if r := fl.cb.Route(); r != nil {
		if r.FilterDisabled(Name) {
			return httpfilter.HeadersContinue
		}
		if pr, ok := r.PerFilterConfig(Name).(*perRoute); ok && pr.disabled {
			return httpfilter.HeadersContinue
		}
	}
	if len(h.Authority) == 0 || len(h.Path) == 0 {
		return httpfilter.HeadersContinue
	}
	fl.key = appendBase(fl.key[:0], h)
	if !get && !head {
		fl.state = stInvalidate
		return httpfilter.HeadersContinue
	}
	fa := fl.fa
	rd := newDirectives()
	for i := range h.Fields {
		if string(h.Fields[i].Name) == "cache-control" {
			parseCacheControl(&rd, h.Fields[i].Value)
		}
	}
	if rd.noStore {
		fa.st.bypass.Inc()
		return httpfilter.HeadersContinue
	}
	fl.auth = h.Has("authorization")
	now := fa.clock()
	e := fa.store.lookup(fl.key, &h.Headers)
	if e != nil && (!fl.auth || e.authOK) {
		age := e.age(now)
		fresh := !e.noCache && !rd.noCache && age < e.lifetime &&
			(rd.maxAge < 0 || age <= time.Duration(rd.maxAge)*time.Second) &&
			(rd.minFresh < 0 || e.lifetime-age >= time.Duration(rd.minFresh)*time.Second)
		if fresh {
			fa.st.hits.Inc()
			fl.serve(e, h, age, head)
			return httpfilter.HeadersStopIteration
		}
		if get && e.hasValidator() && !h.Has("if-none-match") && !h.Has("if-modified-since") &&
			!h.Has("if-match") && !h.Has("if-unmodified-since") && !h.Has("if-range") && !h.Has("range") {
			fa.st.validations.Inc()
			if len(e.etag) > 0 {
				h.AddBytes([]byte("if-none-match"), e.etag)
			}
			if len(e.lastMod) > 0 {
				h.AddBytes([]byte("if-modified-since"), e.lastMod)
			}
			fl.state, fl.old, fl.req, fl.reqTime = stValidate, e, h, now
			return httpfilter.HeadersContinue
		}
	}
	fa.st.misses.Inc()
	if rd.onlyIfCached {
		// RFC 9111 §5.2.1.7: no stored response to use, and the client
		// wants no other.
		fl.state = stServing
		fl.cb.SendLocalReply(httpfilter.LocalReply{Status: 504, Body: "Gateway Timeout\n", Details: "cache.only_if_cached"})
		return httpfilter.HeadersStopIteration
	}
	if get && !h.Has("range") {
		fl.state, fl.req, fl.reqTime = stInsert, h, now
	}
	return httpfilter.HeadersContinue
}

// serve answers the request with e: a 304 when the client's conditional
// headers match it (RFC 9110 §13.1), else the stored response (its head
// only for HEAD), with an Age field.
func (fl *filter) serve(e *entry, h *httpfilter.RequestHeaders, age time.Duration, head bool) {
	notMod := false
	if e.status == 200 {
		if inm := h.Get("if-none-match"); inm != nil {
			notMod = etagMatch(inm, e.etag)
		} else if ims := h.Get("if-modified-since"); ims != nil && len(e.lastMod) > 0 {
			t, ok1 := parseHTTPDate(ims)
			lm, ok2 := parseHTTPDate(e.lastMod)
			notMod = ok1 && ok2 && !lm.After(t)
		}
	}
	rh := &fl.resp
	rh.Status = e.status
	rh.Fields = rh.Fields[:0]
	if notMod {
		fl.fa.st.notModified.Inc()
		rh.Status = 304
		for _, f := range e.fields {
			switch string(f.Name) {
			case "cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified":
				rh.Fields = append(rh.Fields, f)
			}
		}
	} else {
		rh.Fields = append(rh.Fields, e.fields...)
	}
	rh.Fields = append(rh.Fields, httpfilter.Field{Name: hdrAge, Value: strconv.AppendInt(fl.age[:0], int64(age/time.Second), 10)})
	info := fl.cb.Info()
	info.ResponseFlags |= httpfilter.FlagResponseFromCacheFilter
	info.ResponseDetails = ResponseDetails
	fl.state = stServing
	end := head || notMod || len(e.body) == 0
	if fl.cb.EncodeHeaders(rh, end) != nil || end {
		return
	}
	// The body goes out in copies: a filter after this one may reuse the
	// buffer it is given (Reset, Append), which must not reach the
	// stored bytes.
	if fl.scratch == nil {
		fl.scratch = make([]byte, 0, chunk)
	}
	for rest := e.body; len(rest) > 0; {
		n := min(len(rest), chunk)
		fl.out.Set(append(fl.scratch[:0], rest[:n]...))
		rest = rest[n:]
		if fl.cb.EncodeData(&fl.out, len(rest) == 0) != nil {
			return
		}
	}
}

// DecodeData implements httpfilter.DecoderFilter: the body of a request
// the cache answered goes nowhere.
func (fl *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	if fl.state == stServing {
		return httpfilter.DataStopNoBuffer
	}
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (fl *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter: a response still being
// stored did not end well (reset, truncated) and is dropped.
func (fl *filter) OnDestroy() {
	clear(fl.resp.Fields)
	fl.resp.Fields = fl.resp.Fields[:0]
	fl.out.Set(nil)
	*fl = filter{key: fl.key[:0], resp: fl.resp, scratch: fl.scratch}
	filters.Put(fl)
}

// EncodeHeaders implements httpfilter.EncoderFilter.
func (fl *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, end bool) httpfilter.HeadersStatus {
	switch fl.state {
	case stInvalidate:
		// RFC 9111 §4.4: a non-error response to an unsafe method
		// invalidates the stored responses of its URL.
		if h.Status < 400 {
			fl.fa.store.invalidate(fl.key)
		}
		fl.state = stOff
	case stValidate:
		if h.Status == 304 {
			fl.revalidated(h, end)
			return httpfilter.HeadersContinue
		}
		fl.old = nil
		fl.start(h, end)
	case stInsert:
		fl.start(h, end)
	}
	return httpfilter.HeadersContinue
}

// cacheableStatus: the codes RFC 9110 §15.1 makes heuristically
// cacheable, less 206 (ranges are not stored), as Envoy's list.
func cacheableStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 451, 501:
		return true
	}
	return false
}

// freshness is what a response head says about storing it.
type freshness struct {
	ok         bool // storable
	noCache    bool
	authOK     bool
	lifetime   time.Duration
	initialAge time.Duration
}

// assess reads a response head received at now for a request sent at
// reqTime (RFC 9111 §3, §4.2.1, §4.2.3). auth: the request had
// Authorization.
func assess(fields []httpfilter.Field, reqTime, now time.Time, auth bool) freshness {
	d := newDirectives()
	var date, expires, ageV []byte
	hasExpires := false
	for i := range fields {
		f := &fields[i]
		switch string(f.Name) {
		case "cache-control":
			parseCacheControl(&d, f.Value)
		case "date":
			date = f.Value
		case "expires":
			expires, hasExpires = f.Value, true
		case "age":
			ageV = f.Value
		case "set-cookie":
			// Not stored, as nginx does not: a shared cache would hand
			// one client's cookie to the others.
			return freshness{}
		}
	}
	if d.noStore || d.private {
		return freshness{}
	}
	fr := freshness{ok: true, noCache: d.noCache, authOK: d.public || d.sMaxAge >= 0 || d.mustRevalidate}
	if auth && !fr.authOK {
		return freshness{}
	}
	dateT, dateOK := parseHTTPDate(date)
	switch {
	case d.sMaxAge >= 0:
		fr.lifetime = time.Duration(d.sMaxAge) * time.Second
	case d.maxAge >= 0:
		fr.lifetime = time.Duration(d.maxAge) * time.Second
	case hasExpires:
		// An invalid Expires (such as "0") is in the past (§5.3).
		if exp, ok := parseHTTPDate(expires); ok {
			base := now
			if dateOK {
				base = dateT
			}
			fr.lifetime = max(exp.Sub(base), 0)
		}
	case d.noCache:
		// Stored to be revalidated on each use.
	default:
		return freshness{} // no explicit freshness: heuristics are off
	}
	if d.noCache {
		fr.lifetime = 0
	}
	apparent := time.Duration(0)
	if dateOK {
		apparent = max(now.Sub(dateT), 0)
	}
	ageValue := time.Duration(deltaSeconds(ageV, ageV != nil)) * time.Second
	corrected := ageValue + max(now.Sub(reqTime), 0)
	fr.initialAge = max(apparent, corrected)
	return fr
}

// start decides whether the response may be stored and begins storing it.
func (fl *filter) start(h *httpfilter.ResponseHeaders, end bool) {
	fl.state = stOff
	fa := fl.fa
	if !cacheableStatus(h.Status) {
		return
	}
	now := fa.clock()
	fr := assess(h.Fields, fl.reqTime, now, fl.auth)
	if !fr.ok {
		return
	}
	var vary []string
	for i := range h.Fields {
		if string(h.Fields[i].Name) != "vary" {
			continue
		}
		var star, ok bool
		if vary, star, ok = parseVary(vary, h.Fields[i].Value); star || !ok {
			return
		}
	}
	for _, n := range vary {
		if !allowed(fa.allowedVary, n) {
			return
		}
	}
	fl.want = -1
	if v := h.Get("content-length"); v != nil {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 || n > fa.maxBody {
			return
		}
		fl.want = n
	}
	e := &entry{base: string(fl.key), variant: string(appendVariant(nil, vary, &fl.req.Headers)),
		status: h.Status, lifetime: fr.lifetime, initialAge: fr.initialAge, stored: now,
		noCache: fr.noCache, authOK: fr.authOK}
	copyFields(e, h.Fields)
	if e.lifetime == 0 && !e.hasValidator() {
		return // could never be used
	}
	fl.ins, fl.vary = e, vary
	if fl.want > 0 {
		e.body = make([]byte, 0, fl.want)
	}
	fl.state = stCollect
	if end {
		fl.commit()
	}
}

func allowed(list []string, n string) bool {
	for _, a := range list {
		if a == n {
			return true
		}
	}
	return false
}

// copyFields stores a copy of fields (but age) in e, in one allocation for
// their bytes, and points e's validators into it.
func copyFields(e *entry, fields []httpfilter.Field) {
	n, k := 0, 0
	for i := range fields {
		if string(fields[i].Name) == "age" {
			continue
		}
		n += len(fields[i].Name) + len(fields[i].Value)
		k++
	}
	arena := make([]byte, 0, n)
	e.fields = make([]httpfilter.Field, 0, k)
	for i := range fields {
		f := &fields[i]
		if string(f.Name) == "age" {
			continue
		}
		a := len(arena)
		arena = append(arena, f.Name...)
		b := len(arena)
		arena = append(arena, f.Value...)
		nf := httpfilter.Field{Name: arena[a:b:b], Value: arena[b:len(arena):len(arena)]}
		e.fields = append(e.fields, nf)
		switch string(nf.Name) {
		case "etag":
			e.etag = nf.Value
		case "last-modified":
			e.lastMod = nf.Value
		}
	}
	e.size = int64(n) + int64(len(e.base)+len(e.variant)) + entryOverhead + int64(k)*48
}

// commit stores the finished entry.
func (fl *filter) commit() {
	e := fl.ins
	fl.ins, fl.state = nil, stOff
	if fl.want >= 0 && int64(len(e.body)) != fl.want {
		return // truncated
	}
	e.body = e.body[:len(e.body):len(e.body)]
	e.size += int64(len(e.body))
	fl.fa.store.put(e, fl.vary)
}

// revalidated handles an upstream 304 to the filter's conditional request
// (RFC 9111 §4.3.3, §4.3.4): the stored entry's header fields are updated
// from it, and the client gets the stored response.
func (fl *filter) revalidated(h *httpfilter.ResponseHeaders, end bool) {
	fa, old := fl.fa, fl.old
	fa.st.revalidated.Inc()
	merged := make([]httpfilter.Field, 0, len(old.fields)+len(h.Fields))
	for _, f := range old.fields {
		if !updatable(f.Name) || !hasField(h.Fields, f.Name) {
			merged = append(merged, f)
		}
	}
	for _, f := range h.Fields {
		if updatable(f.Name) {
			merged = append(merged, f)
		}
	}
	now := fa.clock()
	e := &entry{base: old.base, variant: old.variant, status: old.status, body: old.body, stored: now}
	copyFields(e, merged)
	e.size += int64(len(e.body))
	fr := assess(e.fields, fl.reqTime, now, fl.auth)
	if fr.ok {
		e.lifetime, e.initialAge, e.noCache, e.authOK = fr.lifetime, fr.initialAge, fr.noCache, fr.authOK
		fa.store.refresh(old, e)
	} else {
		fa.store.invalidate(fl.key)
	}
	h.Status = e.status
	h.Fields = append(h.Fields[:0], e.fields...)
	h.Fields = append(h.Fields, httpfilter.Field{Name: hdrAge, Value: strconv.AppendInt(nil, int64(e.initialAge/time.Second), 10)})
	fl.old, fl.state = e, stGive
	if len(e.body) == 0 {
		fl.state = stOff
	}
	_ = end
}

// updatable reports whether a 304 may replace a stored field (RFC 9111
// §3.2 keeps the framing and content fields of the stored response).
func updatable(name []byte) bool {
	switch string(name) {
	case "content-length", "content-encoding", "content-type", "content-range", "transfer-encoding", "age":
		return false
	}
	return true
}

func hasField(fields []httpfilter.Field, name []byte) bool {
	for i := range fields {
		if string(fields[i].Name) == string(name) {
			return true
		}
	}
	return false
}

// GiveBody implements httpfilter.BodyGiver: after an upstream 304 to the
// filter's revalidation, the stored body follows the stored head.
func (fl *filter) GiveBody() []byte {
	if fl.state != stGive {
		return nil
	}
	fl.state = stOff
	b := fl.old.body
	fl.old = nil
	return b
}

// EncodeData implements httpfilter.EncoderFilter: the body of a response
// being stored is copied as it passes, and dropped past max_body_bytes.
func (fl *filter) EncodeData(b *buffer.Buffer, end bool) httpfilter.DataStatus {
	switch fl.state {
	case stCollect:
		e := fl.ins
		if int64(len(e.body)+b.Len()) > fl.fa.maxBody {
			fl.ins, fl.state = nil, stOff
			return httpfilter.DataContinue
		}
		e.body = append(e.body, b.Bytes()...)
		if end {
			fl.commit()
		}
	case stGive:
		// A 304 that came with an (empty) body: the stored body
		// replaces it.
		b.Reset()
		if end {
			b.Set(append([]byte(nil), fl.old.body...))
			fl.old, fl.state = nil, stOff
		}
	}
	return httpfilter.DataContinue
}

// EncodeTrailers implements httpfilter.EncoderFilter: responses with
// trailers are not stored.
func (fl *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	if fl.state == stCollect {
		fl.ins, fl.state = nil, stOff
	}
	return httpfilter.TrailersContinue
}

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
	_ httpfilter.EncoderFilter = (*filter)(nil)
	_ httpfilter.BodyGiver     = (*filter)(nil)
)
