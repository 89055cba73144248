package hcm

import (
	"bytes"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// The host port stripping modes (Envoy's strip_port_mode).
const (
	stripNone uint8 = iota
	stripMatching
	stripAny
)

// stripHostPort removes the port from the request's authority (Host) before
// routing, as Envoy's HeaderUtility::stripPortFromHost: with stripMatching
// only a port equal to the listener's (localPort), with stripAny any
// numeric port. A CONNECT's authority keeps its port (RFC 9110 section
// 9.3.6), as does an IPv6 literal without one ("[::1]").
func stripHostPort(h *httpfilter.RequestHeaders, mode uint8, localPort uint16) {
	if string(h.Method) == "CONNECT" {
		return
	}
	a := h.Authority
	i := bytes.LastIndexByte(a, ':')
	if i < 0 || bytes.LastIndexByte(a, ']') > i || i+1 == len(a) {
		return
	}
	port := 0
	for _, c := range a[i+1:] {
		if c < '0' || c > '9' || port > 65535 {
			return
		}
		port = port*10 + int(c-'0')
	}
	if port > 65535 || mode == stripMatching && port != int(localPort) {
		return
	}
	h.Authority = a[:i]
}
