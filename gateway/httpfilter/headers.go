package httpfilter

// Field is one header field. Name is lowercase ASCII; Value has no leading or
// trailing whitespace. Both may alias a codec's read buffer (see Headers).
type Field struct {
	Name  []byte
	Value []byte
}

// Headers is an ordered list of header fields, in the order they were
// received or added. Names are lowercase. Lookups are linear: header lists
// are short, and a slice scan beats a map on the hot path.
//
// Headers handed to a filter are owned by the stream; the filter may read and
// modify them during the call and until the stream ends, but must not retain
// them after OnDestroy. Field slices produced by a codec alias its read
// buffer; values added by filters are copied in.
type Headers struct {
	Fields []Field
}

// Len returns the number of fields.
func (h *Headers) Len() int { return len(h.Fields) }

// Get returns the value of the first field named name (lowercase), or nil.
func (h *Headers) Get(name string) []byte {
	for i := range h.Fields {
		if string(h.Fields[i].Name) == name {
			return h.Fields[i].Value
		}
	}
	return nil
}

// Has reports whether a field named name (lowercase) is present.
func (h *Headers) Has(name string) bool {
	for i := range h.Fields {
		if string(h.Fields[i].Name) == name {
			return true
		}
	}
	return false
}

// Add appends a field, copying name and value. name must be lowercase.
func (h *Headers) Add(name, value string) {
	h.Fields = append(h.Fields, Field{Name: []byte(name), Value: []byte(value)})
}

// AddBytes appends a field without copying: the slices must stay valid and
// unmodified for the life of the stream. name must be lowercase.
func (h *Headers) AddBytes(name, value []byte) {
	h.Fields = append(h.Fields, Field{Name: name, Value: value})
}

// Set replaces every field named name (lowercase) with a single field of
// value, keeping the position of the first occurrence.
func (h *Headers) Set(name, value string) {
	for i := range h.Fields {
		if string(h.Fields[i].Name) == name {
			h.Fields[i].Value = []byte(value)
			h.delFrom(name, i+1)
			return
		}
	}
	h.Add(name, value)
}

// SetBytes is Set without copying: name (lowercase) and value must stay
// valid and unmodified for the life of the stream.
func (h *Headers) SetBytes(name, value []byte) {
	for i := range h.Fields {
		if string(h.Fields[i].Name) == string(name) {
			h.Fields[i].Value = value
			h.delFrom(string(name), i+1)
			return
		}
	}
	h.AddBytes(name, value)
}

// Del removes every field named name (lowercase) and reports how many it
// removed.
func (h *Headers) Del(name string) int {
	return h.delFrom(name, 0)
}

func (h *Headers) delFrom(name string, from int) int {
	out := from
	for i := from; i < len(h.Fields); i++ {
		if string(h.Fields[i].Name) == name {
			continue
		}
		h.Fields[out] = h.Fields[i]
		out++
	}
	n := len(h.Fields) - out
	clear(h.Fields[out:])
	h.Fields = h.Fields[:out]
	return n
}

// Reset removes every field, keeping capacity.
func (h *Headers) Reset() {
	clear(h.Fields)
	h.Fields = h.Fields[:0]
}

// RequestHeaders is a request head in protocol-independent form: HTTP/1's
// request line and Host header become the pseudo-header fields, as HTTP/2
// and HTTP/3 carry them. Headers holds end-to-end fields only: codecs remove
// hop-by-hop fields (Connection and the fields it names, Keep-Alive,
// Proxy-Connection, Transfer-Encoding, Upgrade, TE other than "trailers")
// and the Host field.
type RequestHeaders struct {
	Method    []byte // e.g. "GET"
	Scheme    []byte // "http" or "https", as seen downstream
	Authority []byte // host[:port] from Host or the absolute-form target
	Path      []byte // origin-form path and query, e.g. "/a?b=c"
	Headers
}

// Reset clears the head for reuse.
func (r *RequestHeaders) Reset() {
	r.Method, r.Scheme, r.Authority, r.Path = nil, nil, nil, nil
	r.Headers.Reset()
}

// ResponseHeaders is a response head in protocol-independent form. Headers
// holds end-to-end fields only, as for RequestHeaders.
type ResponseHeaders struct {
	Status int
	Headers
}

// Reset clears the head for reuse.
func (r *ResponseHeaders) Reset() {
	r.Status = 0
	r.Headers.Reset()
}
