package http2

import "strconv"

// Response header blocks are encoded without the HPACK dynamic table
// (RFC 7541): each field is a literal without indexing, its name an index
// into the static table when it is there, and the common statuses are
// indexed whole. A block then depends on nothing that came before it, so a
// stream encodes its head on its own goroutine without the connection's
// lock and without the encoder's table searches (two map lookups per field
// in hpack.Encoder), and the client's SETTINGS_HEADER_TABLE_SIZE needs no
// answer. The cost is a few bytes per repeated field that an indexed
// encoder would have sent as one byte; values are sent as raw octets, not
// Huffman-coded (encoding them cost more CPU than their bytes cost to
// encrypt and send).

// staticStatus is the static table index of the statuses it holds whole.
func staticStatus(code int) byte {
	switch code {
	case 200:
		return 8
	case 204:
		return 9
	case 206:
		return 10
	case 304:
		return 11
	case 400:
		return 12
	case 404:
		return 13
	case 500:
		return 14
	}
	return 0
}

// staticName is the static table index of a (lowercase) field name, or 0.
func staticName(name string) int {
	switch name {
	case "accept-charset":
		return 15
	case "accept-encoding":
		return 16
	case "accept-language":
		return 17
	case "accept-ranges":
		return 18
	case "accept":
		return 19
	case "access-control-allow-origin":
		return 20
	case "age":
		return 21
	case "allow":
		return 22
	case "authorization":
		return 23
	case "cache-control":
		return 24
	case "content-disposition":
		return 25
	case "content-encoding":
		return 26
	case "content-language":
		return 27
	case "content-length":
		return 28
	case "content-location":
		return 29
	case "content-range":
		return 30
	case "content-type":
		return 31
	case "cookie":
		return 32
	case "date":
		return 33
	case "etag":
		return 34
	case "expect":
		return 35
	case "expires":
		return 36
	case "from":
		return 37
	case "host":
		return 38
	case "if-match":
		return 39
	case "if-modified-since":
		return 40
	case "if-none-match":
		return 41
	case "if-range":
		return 42
	case "if-unmodified-since":
		return 43
	case "last-modified":
		return 44
	case "link":
		return 45
	case "location":
		return 46
	case "max-forwards":
		return 47
	case "proxy-authenticate":
		return 48
	case "proxy-authorization":
		return 49
	case "range":
		return 50
	case "referer":
		return 51
	case "refresh":
		return 52
	case "retry-after":
		return 53
	case "server":
		return 54
	case "set-cookie":
		return 55
	case "strict-transport-security":
		return 56
	case "transfer-encoding":
		return 57
	case "user-agent":
		return 58
	case "vary":
		return 59
	case "via":
		return 60
	case "www-authenticate":
		return 61
	}
	return 0
}

// appendInt appends v as an HPACK integer with an n-bit prefix; first
// holds the bits above the prefix (RFC 7541 §5.1).
func appendInt(b []byte, first byte, n uint, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(limit))
	v -= limit
	for v >= 128 {
		b = append(b, byte(v&0x7f)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendString appends s as a raw (not Huffman-coded) string literal.
func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = appendInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendStatus appends the :status pseudo-field.
func appendStatus(b []byte, code int) []byte {
	if i := staticStatus(code); i != 0 {
		return append(b, 0x80|i)
	}
	b = appendInt(b, 0, 4, 8) // literal without indexing, name :status
	if code >= 100 && code <= 999 {
		// Three digits: a string literal of length 3.
		return append(b, 3, byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10))
	}
	var digits [20]byte
	return appendString(b, strconv.AppendInt(digits[:0], int64(code), 10))
}

// appendField appends a field as a literal without indexing; name must be
// lowercase.
func appendField[S ~string | ~[]byte](b []byte, name, value S) []byte {
	if i := staticName(string(name)); i != 0 {
		b = appendInt(b, 0, 4, uint64(i))
	} else {
		b = append(b, 0)
		b = appendString(b, name)
	}
	return appendString(b, value)
}
