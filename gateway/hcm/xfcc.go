package hcm

import (
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/xfcc"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// ClientCertDetails is Envoy's set_current_client_cert_details: the
// optional fields of the x-forwarded-client-cert element sluice adds with
// APPEND_FORWARD and SANITIZE_SET (By= and Hash= are always there).
type ClientCertDetails struct {
	// Subject adds Subject="<RFC 2253 subject>".
	Subject bool `toml:"subject"`
	// Cert adds Cert="<url-encoded PEM of the client certificate>".
	Cert bool `toml:"cert"`
	// Chain adds Chain="<url-encoded PEM of every certificate the client sent>".
	Chain bool `toml:"chain"`
	// DNS adds DNS=<name> for each DNS SAN.
	DNS bool `toml:"dns"`
	// URI adds URI=<uri> for each URI SAN (URI= alone without one).
	URI bool `toml:"uri"`
}

// The forward_client_cert_details modes (Envoy's ForwardClientCertDetails).
const (
	xfccSanitize uint8 = iota
	xfccForwardOnly
	xfccAppendForward
	xfccSanitizeSet
	xfccAlwaysForwardOnly
)

var xfccModes = map[string]uint8{
	"SANITIZE": xfccSanitize, "FORWARD_ONLY": xfccForwardOnly, "APPEND_FORWARD": xfccAppendForward,
	"SANITIZE_SET": xfccSanitizeSet, "ALWAYS_FORWARD_ONLY": xfccAlwaysForwardOnly,
}

// xfccMode returns the configured mode.
func (c *Config) xfccMode() (uint8, error) {
	if c.ForwardClientCertDetails == "" {
		return xfccSanitize, nil
	}
	m, ok := xfccModes[c.ForwardClientCertDetails]
	if !ok {
		return 0, registry.Errorf("forward_client_cert_details",
			"must be SANITIZE, FORWARD_ONLY, APPEND_FORWARD, SANITIZE_SET or ALWAYS_FORWARD_ONLY, not %q", c.ForwardClientCertDetails)
	}
	return m, nil
}

// initXFCC sets what the connection does to x-forwarded-client-cert, as
// Envoy's mutateXfccRequestHeader: ALWAYS_FORWARD_ONLY leaves it;
// SANITIZE, and every other mode on a connection without a client
// certificate, removes it; FORWARD_ONLY leaves it; APPEND_FORWARD appends
// the connection's element, SANITIZE_SET replaces the field with it. The
// element is built once per connection.
func (c *connection) initXFCC() {
	f := c.f
	mtls := c.info.TLSState != nil && len(c.info.TLSState.PeerCertificates) > 0
	switch {
	case f.xfcc == xfccAlwaysForwardOnly:
	case f.xfcc == xfccSanitize || !mtls:
		c.dropXFCC = true
	case f.xfcc == xfccAppendForward || f.xfcc == xfccSanitizeSet:
		var d xfcc.Details
		if s := f.cfg.SetCurrentClientCertDetails; s != nil {
			d = xfcc.Details{Subject: s.Subject, Cert: s.Cert, Chain: s.Chain, DNS: s.DNS, URI: s.URI}
		}
		c.xfcc = xfcc.Append(nil, c.info.LocalCert, c.info.TLSState.PeerCertificates, d)
	}
}

// setXFCC adds the connection's x-forwarded-client-cert element to h:
// APPEND_FORWARD appends it, after a ',', to the value the client sent
// (several fields joined by ',', as Envoy's header map joins them),
// SANITIZE_SET replaces that value.
func (s *stream) setXFCC(h *httpfilter.RequestHeaders) {
	c := s.conn
	if c.f.xfcc == xfccAppendForward {
		s.xfccBuf = s.xfccBuf[:0]
		for _, f := range h.Fields {
			if string(f.Name) == "x-forwarded-client-cert" && len(f.Value) > 0 {
				s.xfccBuf = append(append(s.xfccBuf, f.Value...), ',')
			}
		}
		if len(s.xfccBuf) > 0 {
			h.Del("x-forwarded-client-cert")
			s.xfccBuf = append(s.xfccBuf, c.xfcc...)
			h.AddBytes(hdrXFCC, s.xfccBuf)
			return
		}
	}
	h.Del("x-forwarded-client-cert")
	h.AddBytes(hdrXFCC, c.xfcc)
}

var hdrXFCC = []byte("x-forwarded-client-cert")
