package router

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/lb"
)

// HashPolicyConfig is one entry of a route's hash_policy list. Exactly one
// of Header, Cookie, SourceIP and QueryParameter is set. Its fields match
// config.HashPolicy, so one converts to the other.
type HashPolicyConfig struct {
	// Header hashes the value of the named request header (":authority",
	// "host", ":path", ":method" and ":scheme" name the request line's
	// parts). Several fields of that name are hashed together, sorted.
	Header string
	// Cookie hashes the value of the named cookie from the Cookie headers.
	// An absent or empty cookie gives no hash.
	Cookie string
	// SourceIP hashes the downstream client's IP address.
	SourceIP bool
	// QueryParameter hashes the (decoded) value of the first query
	// parameter of that (decoded) name.
	QueryParameter string
	// Terminal stops the evaluation at this entry when a hash has been
	// computed by it or the entries before it.
	Terminal bool
}

// Hasher computes a request's hash from a route's hash policies, for the
// ring_hash and maglev load balancers, as Envoy does: each policy that
// yields a value is hashed with xxHash64 and mixed in (the hash so far,
// rotated left by one, XOR the new one), until a terminal policy yields one.
//
// A Hasher is immutable and safe for concurrent use; Hash allocates nothing
// for ordinary requests. A nil *Hasher yields no hash.
type Hasher struct {
	methods []hashMethod
}

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

type hashMethod struct {
	kind     hashKind
	name     string
	terminal bool
}

// NewHasher builds the hash policies of a route. It returns nil for an empty
// list.
func NewHasher(policies []HashPolicyConfig) (*Hasher, error) {
	if len(policies) == 0 {
		return nil, nil
	}
	h := &Hasher{methods: make([]hashMethod, 0, len(policies))}
	for i, p := range policies {
		m, err := newHashMethod(p)
		if err != nil {
			return nil, fmt.Errorf("router: hash_policy[%d]: %w", i, err)
		}
		h.methods = append(h.methods, m)
	}
	return h, nil
}

func newHashMethod(p HashPolicyConfig) (hashMethod, error) {
	m := hashMethod{terminal: p.Terminal}
	set := 0
	if p.Header != "" {
		set++
		m.kind, m.name = hashHeader, strings.ToLower(p.Header)
	}
	if p.Cookie != "" {
		set++
		m.kind, m.name = hashCookie, p.Cookie
	}
	if p.SourceIP {
		set++
		m.kind = hashSourceIP
	}
	if p.QueryParameter != "" {
		set++
		m.kind, m.name = hashQuery, p.QueryParameter
	}
	if set != 1 {
		return m, errors.New("exactly one of header, cookie, source_ip and query_parameter must be set")
	}
	return m, nil
}

// Hash returns the hash of req, whose downstream client is client (the zero
// Addr if unknown), and whether any policy yielded one.
func (h *Hasher) Hash(req *httpfilter.RequestHeaders, client netip.Addr) (uint64, bool) {
	if h == nil {
		return 0, false
	}
	var hash uint64
	ok := false
	for i := range h.methods {
		m := &h.methods[i]
		if v, found := m.eval(req, client); found {
			if ok {
				hash = bits.RotateLeft64(hash, 1)
			}
			hash ^= v
			ok = true
		}
		if m.terminal && ok {
			break
		}
	}
	return hash, ok
}

func (m *hashMethod) eval(req *httpfilter.RequestHeaders, client netip.Addr) (uint64, bool) {
	switch m.kind {
	case hashHeader:
		return hashHeaderValues(req, m.name)
	case hashCookie:
		v, ok := cookieValue(&req.Headers, m.name)
		if !ok || len(v) == 0 {
			return 0, false
		}
		return lb.Hash(v, 0), true
	case hashSourceIP:
		if !client.IsValid() {
			return 0, false
		}
		var buf [64]byte
		return lb.Hash(client.Unmap().WithZone("").AppendTo(buf[:0]), 0), true
	case hashQuery:
		return hashQueryParameter(req.Path, m.name)
	}
	return 0, false
}

// hashHeaderValues hashes the named header's value; several values are
// sorted and chained through the seed, as Envoy does.
func hashHeaderValues(req *httpfilter.RequestHeaders, name string) (uint64, bool) {
	switch name {
	case ":authority", "host":
		return lb.Hash(req.Authority, 0), req.Authority != nil
	case ":path":
		return lb.Hash(req.Path, 0), req.Path != nil
	case ":method":
		return lb.Hash(req.Method, 0), req.Method != nil
	case ":scheme":
		return lb.Hash(req.Scheme, 0), req.Scheme != nil
	}
	var stack [8][]byte
	values := stack[:0]
	for i := range req.Fields {
		if string(req.Fields[i].Name) == name {
			values = append(values, req.Fields[i].Value)
		}
	}
	switch len(values) {
	case 0:
		return 0, false
	case 1:
		return lb.Hash(values[0], 0), true
	}
	slices.SortFunc(values, bytes.Compare)
	var seed uint64
	for _, v := range values {
		seed = lb.Hash(v, seed)
	}
	return seed, true
}

// cookieValue returns the value of the first cookie named name in the Cookie
// headers, without surrounding double quotes.
func cookieValue(h *httpfilter.Headers, name string) ([]byte, bool) {
	for i := range h.Fields {
		if string(h.Fields[i].Name) != "cookie" {
			continue
		}
		rest := h.Fields[i].Value
		for len(rest) > 0 {
			var pair []byte
			pair, rest, _ = bytes.Cut(rest, []byte{';'})
			k, v, found := bytes.Cut(http1.TrimOWS(pair), []byte{'='})
			if !found || string(k) != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return nil, false
}

// hashQueryParameter hashes the decoded value of the first parameter of
// path's query whose decoded name is name.
func hashQueryParameter(path []byte, name string) (uint64, bool) {
	_, query, found := bytes.Cut(path, []byte{'?'})
	if !found {
		return 0, false
	}
	query, _, _ = bytes.Cut(query, []byte{'#'})
	var nbuf, vbuf [128]byte
	for len(query) > 0 {
		var param []byte
		param, query, _ = bytes.Cut(query, []byte{'&'})
		k, v, _ := bytes.Cut(param, []byte{'='})
		if string(queryUnescape(nbuf[:0], k)) != name {
			continue
		}
		return lb.Hash(queryUnescape(vbuf[:0], v), 0), true
	}
	return 0, false
}

// queryUnescape decodes a query component ('+' is a space, %XX a byte;
// invalid escapes stay as they are). It returns s itself when there is
// nothing to decode, and otherwise appends to buf.
func queryUnescape(buf, s []byte) []byte {
	if bytes.IndexByte(s, '%') < 0 && bytes.IndexByte(s, '+') < 0 {
		return s
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			buf = append(buf, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
