package hcm

import (
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// The server_header_transformation modes; serverNone: sluice touches no
// server header (neither server_name nor server_header_transformation set).
const (
	serverNone uint8 = iota
	serverOverwrite
	serverAppendIfAbsent
	serverPassThrough
)

// serverMode returns the server header handling and the name to send.
func (c *Config) serverMode() (uint8, []byte, error) {
	name := c.ServerName
	if name != "" && !http1.ValidFieldValue(name) {
		return 0, nil, registry.Errorf("server_name", "not a valid field value (control characters, or leading or trailing whitespace)")
	}
	if c.Via != "" && !http1.ValidFieldValue(c.Via) {
		return 0, nil, registry.Errorf("via", "not a valid field value (control characters, or leading or trailing whitespace)")
	}
	var m uint8
	switch c.ServerHeaderTransformation {
	case "":
		if name == "" {
			return serverNone, nil, nil
		}
		m = serverOverwrite
	case "OVERWRITE":
		m = serverOverwrite
	case "APPEND_IF_ABSENT":
		m = serverAppendIfAbsent
	case "PASS_THROUGH":
		return serverPassThrough, nil, nil
	default:
		return 0, nil, registry.Errorf("server_header_transformation",
			"must be OVERWRITE, APPEND_IF_ABSENT or PASS_THROUGH, not %q", c.ServerHeaderTransformation)
	}
	if name == "" {
		name = "sluice"
	}
	return m, []byte(name), nil
}

// serverHeaders sets the response's server header as
// server_header_transformation says and appends via to its via header,
// on every final response, proxied or local, as Envoy's encodeHeaders and
// mutateResponseHeaders do.
func (f *Factory) serverHeaders(h *httpfilter.ResponseHeaders) {
	switch f.server {
	case serverOverwrite:
		h.Del("server")
		h.AddBytes(hdrServer, f.serverName)
	case serverAppendIfAbsent:
		if !h.Has("server") {
			h.AddBytes(hdrServer, f.serverName)
		}
	}
	if f.via != nil {
		appendVia(&h.Headers, f.via)
	}
}

// appendVia appends via to h's via header after ", " (several fields
// become one), or sets it, as Envoy's Utility::appendVia.
func appendVia(h *httpfilter.Headers, via []byte) {
	var v []byte
	n := 0
	for _, f := range h.Fields {
		if string(f.Name) == "via" && len(f.Value) > 0 {
			v = append(append(v, f.Value...), ',', ' ')
			n++
		}
	}
	if n == 0 {
		h.AddBytes(hdrVia, via)
		return
	}
	h.Del("via")
	h.AddBytes(hdrVia, append(v, via...))
}

var (
	hdrServer = []byte("server")
	hdrVia    = []byte("via")
)
