// Package xfcc builds and parses x-forwarded-client-cert (XFCC) values in
// Envoy's format: a comma-separated list of elements, one per proxy hop;
// each element a semicolon-separated list of key=value pairs; a value
// holding ',', ';' or '=' double-quoted, with '"' inside written '\"'.
package xfcc

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
)

// Details says which optional fields an element carries (Envoy's
// set_current_client_cert_details); By= and Hash= are always there.
type Details struct {
	Subject, Cert, Chain, DNS, URI bool
}

// Append appends to dst the element describing the client certificate
// chain peer (leaf first, as the client sent it) presented to a server
// whose own certificate is local (nil: no By=), as Envoy's
// mutateXfccRequestHeader builds it: By= for each URI SAN of local, Hash=
// the hex SHA-256 of the leaf's DER, then, as d asks, in this order,
// Cert="<url-encoded PEM of the leaf>", Chain="<url-encoded PEM of each
// certificate of peer>", Subject="<leaf subject, RFC 2253>" (present even
// when empty), URI=<each URI SAN of the leaf> (URI= alone when it has none)
// and DNS=<each DNS SAN>. It appends nothing when peer is empty.
func Append(dst []byte, local *x509.Certificate, peer []*x509.Certificate, d Details) []byte {
	if len(peer) == 0 {
		return dst
	}
	leaf := peer[0]
	start := len(dst)
	sep := func() {
		if len(dst) > start {
			dst = append(dst, ';')
		}
	}
	if local != nil {
		for _, u := range local.URIs {
			sep()
			dst = append(append(dst, "By="...), u.String()...)
		}
	}
	sep()
	sum := sha256.Sum256(leaf.Raw)
	dst = hex.AppendEncode(append(dst, "Hash="...), sum[:])
	if d.Cert {
		dst = appendPEM(append(dst, `;Cert="`...), leaf)
		dst = append(dst, '"')
	}
	if d.Chain {
		dst = append(dst, `;Chain="`...)
		for _, c := range peer {
			dst = appendPEM(dst, c)
		}
		dst = append(dst, '"')
	}
	if d.Subject {
		dst = append(append(append(dst, `;Subject="`...), leaf.Subject.String()...), '"')
	}
	if d.URI {
		if len(leaf.URIs) == 0 {
			dst = append(dst, ";URI="...)
		}
		for _, u := range leaf.URIs {
			dst = append(append(dst, ";URI="...), u.String()...)
		}
	}
	if d.DNS {
		for _, n := range leaf.DNSNames {
			dst = append(append(dst, ";DNS="...), n...)
		}
	}
	return dst
}

// appendPEM appends c's PEM encoding, url-encoded as Envoy encodes it (the
// bytes of PEM that need it: newline, space, '+', '/', '=').
func appendPEM(dst []byte, c *x509.Certificate) []byte {
	for _, b := range pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) {
		switch b {
		case '\n':
			dst = append(dst, "%0A"...)
		case ' ':
			dst = append(dst, "%20"...)
		case '+':
			dst = append(dst, "%2B"...)
		case '/':
			dst = append(dst, "%2F"...)
		case '=':
			dst = append(dst, "%3D"...)
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// Pair is one key=value of an element, the value unquoted.
type Pair struct {
	Key, Value string
}

// Element is the pairs one proxy added.
type Element []Pair

// Get returns the values of the pairs whose key is key (case-insensitive).
func (e Element) Get(key string) []string {
	var out []string
	for _, p := range e {
		if strings.EqualFold(p.Key, key) {
			out = append(out, p.Value)
		}
	}
	return out
}

// ErrSyntax is returned by Parse for a value that is not XFCC.
var ErrSyntax = errors.New("xfcc: malformed value")

// Parse splits an XFCC value into its elements. A quoted value ends at the
// first '"' not preceded by '\'; inside it '\"' stands for '"' and every
// other byte, ',', ';' and '=' included, is the value's. Whitespace around
// elements, pairs, keys and unquoted values is ignored. An empty element
// (",,") is skipped; a pair without '=', an empty key, an unterminated
// quote or bytes after a closing quote are ErrSyntax; an unquoted value may hold '='
// (Envoy writes By= and URI= unquoted whatever the URI holds).
func Parse(v string) ([]Element, error) {
	var out []Element
	var cur Element
	i := 0
	for {
		// a pair, or the end of an element
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i == len(v) || v[i] == ',' {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
			if i == len(v) {
				return out, nil
			}
			i++
			continue
		}
		if v[i] == ';' {
			i++
			continue
		}
		eq := strings.IndexAny(v[i:], "=,;")
		if eq < 0 || v[i+eq] != '=' {
			return nil, ErrSyntax
		}
		key := strings.TrimSpace(v[i : i+eq])
		if key == "" || strings.ContainsAny(key, "\"") {
			return nil, ErrSyntax
		}
		i += eq + 1
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		var val string
		if i < len(v) && v[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < len(v) {
				c := v[i]
				if c == '\\' && i+1 < len(v) && v[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, ErrSyntax
			}
			val = b.String()
			for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
				i++
			}
			if i < len(v) && v[i] != ';' && v[i] != ',' {
				return nil, ErrSyntax
			}
		} else {
			end := strings.IndexAny(v[i:], ",;")
			if end < 0 {
				end = len(v) - i
			}
			val = strings.TrimSpace(v[i : i+end])
			if strings.Contains(val, "\"") { // '=' is tolerated: Envoy does not quote a URI
				return nil, ErrSyntax
			}
			i += end
		}
		cur = append(cur, Pair{Key: key, Value: val})
	}
}
