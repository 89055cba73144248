package tlsinspector

import (
	"errors"
	"unicode/utf8"
)

// TLS wire constants (RFC 8446 §5.1, §4, §4.2).
const (
	recordHeaderLen   = 5
	recordTypeHS      = 0x16 // handshake
	maxRecordLen      = 1<<14 + 2048
	handshakeHdrLen   = 4
	typeClientHello   = 1
	extServerName     = 0
	extALPN           = 16
	serverNameTypeDNS = 0
)

// errMalformed reports bytes that began like TLS but are not a well-formed
// ClientHello.
var errMalformed = errors.New("tls_inspector: malformed ClientHello")

// errTooLarge reports a ClientHello that does not fit MaxClientHelloSize.
var errTooLarge = errors.New("tls_inspector: ClientHello larger than 64 KiB")

// hello is what the inspector learns from a ClientHello.
type hello struct {
	serverName string
	alpn       []string
}

// peekFunc is netfilter.ListenerCallbacks.Peek.
type peekFunc func(n int) ([]byte, error)

// inspect reads a ClientHello through peek, which returns at least n bytes
// of the stream from its start (fewer only with an error). It returns
// tls=false when the first byte is not a TLS handshake record; errMalformed
// when the bytes claimed to be TLS but are not a ClientHello; errTooLarge;
// or peek's error when the stream ended or timed out first.
//
// A ClientHello may span several records, and each record may arrive in
// several reads: inspect asks peek for exactly the bytes it needs next.
func inspect(peek peekFunc) (h hello, tls bool, err error) {
	b, err := peek(1)
	if len(b) == 0 {
		return h, false, err
	}
	if b[0] != recordTypeHS {
		return h, false, nil
	}
	var (
		msg  []byte // handshake bytes reassembled from record fragments
		need = handshakeHdrLen
		off  int // start of the next record in the stream
	)
	for len(msg) < need {
		b, err = peek(off + recordHeaderLen)
		if len(b) < off+recordHeaderLen {
			return h, true, err
		}
		rh := b[off : off+recordHeaderLen]
		n := int(rh[3])<<8 | int(rh[4])
		switch {
		case rh[0] != recordTypeHS, rh[1] != 3, n == 0, n > maxRecordLen:
			return h, true, errMalformed
		case off+recordHeaderLen+n > MaxClientHelloSize:
			return h, true, errTooLarge
		}
		b, err = peek(off + recordHeaderLen + n)
		if len(b) < off+recordHeaderLen+n {
			return h, true, err
		}
		msg = append(msg, b[off+recordHeaderLen:off+recordHeaderLen+n]...)
		off += recordHeaderLen + n
		if need == handshakeHdrLen && len(msg) >= handshakeHdrLen {
			if msg[0] != typeClientHello {
				return h, true, errMalformed
			}
			need = handshakeHdrLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need > MaxClientHelloSize {
				return h, true, errTooLarge
			}
		}
	}
	h, err = parseClientHello(msg[handshakeHdrLen:need])
	return h, true, err
}

// reader walks a ClientHello body; every method fails instead of reading
// past the end.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) bytes(n int) []byte {
	if !r.ok || n > len(r.b) {
		r.ok = false
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

// vec8 and vec16 read a vector with a 1- or 2-byte length prefix.
func (r *reader) vec8() []byte  { return r.bytes(r.u8()) }
func (r *reader) vec16() []byte { return r.bytes(r.u16()) }

// parseClientHello parses a ClientHello body (after the handshake header):
// legacy_version, random, legacy_session_id, cipher_suites,
// legacy_compression_methods and the optional extensions (RFC 8446 §4.1.2).
// Only server_name and application_layer_protocol_negotiation are decoded.
func parseClientHello(body []byte) (hello, error) {
	var h hello
	r := reader{b: body, ok: true}
	version := r.u16()
	r.bytes(32) // random
	if sid := r.vec8(); len(sid) > 32 {
		return h, errMalformed
	}
	if cs := r.vec16(); len(cs) < 2 || len(cs)%2 != 0 {
		return h, errMalformed
	}
	if cm := r.vec8(); len(cm) < 1 {
		return h, errMalformed
	}
	if !r.ok || version>>8 != 3 {
		return h, errMalformed
	}
	if len(r.b) == 0 {
		return h, nil // no extensions (SSLv3-style hello)
	}
	exts := reader{b: r.vec16(), ok: r.ok}
	if !r.ok || len(r.b) != 0 {
		return h, errMalformed
	}
	seenSNI, seenALPN := false, false
	for exts.ok && len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.vec16()
		if !exts.ok {
			break
		}
		switch typ {
		case extServerName:
			if seenSNI {
				return h, errMalformed
			}
			seenSNI = true
			name, err := parseServerName(data)
			if err != nil {
				return h, err
			}
			h.serverName = name
		case extALPN:
			if seenALPN {
				return h, errMalformed
			}
			seenALPN = true
			alpn, err := parseALPN(data)
			if err != nil {
				return h, err
			}
			h.alpn = alpn
		}
	}
	if !exts.ok {
		return hello{}, errMalformed
	}
	return h, nil
}

// parseServerName decodes the server_name extension (RFC 6066 §3) and
// returns its host_name; other name types are skipped.
func parseServerName(data []byte) (string, error) {
	r := reader{b: data, ok: true}
	list := reader{b: r.vec16(), ok: r.ok}
	if !r.ok || len(r.b) != 0 || len(list.b) == 0 {
		return "", errMalformed
	}
	name := ""
	for list.ok && len(list.b) > 0 {
		typ := list.u8()
		v := list.vec16()
		if !list.ok {
			break
		}
		if typ == serverNameTypeDNS && name == "" {
			if !validHostName(v) {
				return "", errMalformed
			}
			name = string(v)
		}
	}
	if !list.ok {
		return "", errMalformed
	}
	return name, nil
}

// validHostName accepts a non-empty DNS name of printable ASCII without
// spaces, at most 255 bytes, as a server name must be.
func validHostName(v []byte) bool {
	if len(v) == 0 || len(v) > 255 {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// parseALPN decodes the application_layer_protocol_negotiation extension
// (RFC 7301 §3.1): a non-empty list of non-empty protocol names.
func parseALPN(data []byte) ([]string, error) {
	r := reader{b: data, ok: true}
	list := reader{b: r.vec16(), ok: r.ok}
	if !r.ok || len(r.b) != 0 || len(list.b) == 0 {
		return nil, errMalformed
	}
	var out []string
	for list.ok && len(list.b) > 0 {
		p := list.vec8()
		if !list.ok || len(p) == 0 {
			return nil, errMalformed
		}
		out = append(out, string(p))
	}
	if !list.ok {
		return nil, errMalformed
	}
	return out, nil
}
