package proxyprotocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
)

// Protocol limits and constants (HAProxy proxy-protocol.txt §2.1, §2.2).
const (
	// maxV1Len is the longest v1 header, CRLF included.
	maxV1Len = 107
	// v2HeaderLen is the fixed part of a v2 header.
	v2HeaderLen = 16
	// MaxHeaderLen is the longest header the filter accepts: a v2 header
	// with the largest length field.
	MaxHeaderLen = v2HeaderLen + 0xffff
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Errors of the parser; all wrap nothing and name the component.
var (
	errNoHeader  = errors.New("proxy_protocol: no PROXY header")
	errMalformed = errors.New("proxy_protocol: malformed PROXY header")
)

// TLV is one type-length-value field of a v2 header.
type TLV struct {
	Type  byte
	Value []byte
}

// Header is a parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is set for v1 UNKNOWN, a v2 LOCAL command, and v2 families
	// whose addresses sluice does not use (AF_UNSPEC, AF_UNIX, datagram):
	// the connection keeps its own addresses.
	Local bool
	// Source and Destination are the addresses the header carries, unless
	// Local.
	Source, Destination netip.AddrPort
	// TLVs are a v2 header's type-length-value fields; the values alias the
	// parsed bytes.
	TLVs []TLV
}

// parse reads a PROXY header at the start of b. It returns the header and
// its length in bytes; or need > len(b) when b is a valid but incomplete
// start (call again with at least need bytes); or errNoHeader when b does
// not start with a signature; or errMalformed.
func parse(b []byte) (h Header, n, need int, err error) {
	switch {
	case hasPrefixOrIsPrefix(b, sigV2):
		if len(b) < v2HeaderLen {
			return h, 0, max(len(b)+1, len(sigV2)), nil
		}
		return parseV2(b)
	case hasPrefixOrIsPrefix(b, sigV1):
		if len(b) < len(sigV1) {
			return h, 0, len(b) + 1, nil
		}
		return parseV1(b)
	}
	return h, 0, 0, errNoHeader
}

// hasPrefixOrIsPrefix reports whether b starts with sig or is a non-empty
// start of it.
func hasPrefixOrIsPrefix(b, sig []byte) bool {
	if len(b) >= len(sig) {
		return bytes.HasPrefix(b, sig)
	}
	return len(b) > 0 && bytes.HasPrefix(sig, b)
}

// parseV1 parses "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN ...\r\n".
func parseV1(b []byte) (h Header, n, need int, err error) {
	end := bytes.Index(b[:min(len(b), maxV1Len)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= maxV1Len || bytes.IndexByte(b, '\n') >= 0 {
			return h, 0, 0, errMalformed
		}
		return h, 0, len(b) + 1, nil
	}
	h.Version, n = 1, end+2
	line := string(b[len(sigV1):end])
	fields := splitSpaces(line)
	if len(fields) == 0 {
		return h, 0, 0, errMalformed
	}
	if fields[0] == "UNKNOWN" {
		h.Local = true
		return h, n, 0, nil
	}
	if len(fields) != 5 || (fields[0] != "TCP4" && fields[0] != "TCP6") {
		return h, 0, 0, errMalformed
	}
	v4 := fields[0] == "TCP4"
	src, err1 := netip.ParseAddr(fields[1])
	dst, err2 := netip.ParseAddr(fields[2])
	sp, ok1 := parsePort(fields[3])
	dp, ok2 := parsePort(fields[4])
	if err1 != nil || err2 != nil || !ok1 || !ok2 || src.Zone() != "" || dst.Zone() != "" ||
		src.Is4() != v4 || dst.Is4() != v4 {
		return h, 0, 0, errMalformed
	}
	h.Source = netip.AddrPortFrom(src, sp)
	h.Destination = netip.AddrPortFrom(dst, dp)
	return h, n, 0, nil
}

// splitSpaces splits s on single spaces; an empty field (two spaces, a
// leading or trailing space) makes it return nil.
func splitSpaces(s string) []string {
	var out []string
	for {
		i := 0
		for i < len(s) && s[i] != ' ' {
			i++
		}
		if i == 0 {
			return nil
		}
		out = append(out, s[:i])
		if i == len(s) {
			return out
		}
		s = s[i+1:]
	}
}

// parsePort parses a decimal port without sign or leading zeros.
func parsePort(s string) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 0xffff {
		return 0, false
	}
	return uint16(v), true
}

// v2 command, family and transport values (proxy-protocol.txt §2.2).
const (
	cmdLocal     = 0x0
	cmdProxy     = 0x1
	famUnspec    = 0x0
	famInet      = 0x1
	famInet6     = 0x2
	famUnix      = 0x3
	transStream  = 0x1
	addrLenInet  = 12
	addrLenInet6 = 36
	addrLenUnix  = 216
)

// parseV2 parses a binary header whose fixed part is in b.
func parseV2(b []byte) (h Header, n, need int, err error) {
	verCmd, famTrans := b[12], b[13]
	n = v2HeaderLen + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || verCmd&0xf > cmdProxy || famTrans>>4 > famUnix || famTrans&0xf > 2 {
		return h, 0, 0, errMalformed
	}
	if len(b) < n {
		return h, 0, n, nil
	}
	h.Version = 2
	body := b[v2HeaderLen:n]
	fam, trans := famTrans>>4, famTrans&0xf
	if verCmd&0xf == cmdLocal || fam == famUnspec {
		// the receiver uses the real endpoints and discards the block,
		// addresses and TLVs alike (proxy-protocol.txt §2.2)
		h.Local = true
		return h, n, 0, nil
	}
	var alen int
	switch fam {
	case famInet:
		alen = addrLenInet
	case famInet6:
		alen = addrLenInet6
	case famUnix:
		alen = addrLenUnix
	}
	if len(body) < alen {
		return h, 0, 0, errMalformed
	}
	addrs, tlvs := body[:alen], body[alen:]
	switch {
	case trans != transStream, fam == famUnix:
		h.Local = true
	case fam == famInet:
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[0:4])), binary.BigEndian.Uint16(addrs[8:10]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[4:8])), binary.BigEndian.Uint16(addrs[10:12]))
	case fam == famInet6:
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[0:16])), binary.BigEndian.Uint16(addrs[32:34]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[16:32])), binary.BigEndian.Uint16(addrs[34:36]))
	}
	for len(tlvs) > 0 {
		if len(tlvs) < 3 {
			return Header{}, 0, 0, errMalformed
		}
		l := int(binary.BigEndian.Uint16(tlvs[1:3]))
		if len(tlvs) < 3+l {
			return Header{}, 0, 0, errMalformed
		}
		h.TLVs = append(h.TLVs, TLV{Type: tlvs[0], Value: tlvs[3 : 3+l]})
		tlvs = tlvs[3+l:]
	}
	return h, n, 0, nil
}
