package authapi

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// CertificateOf describes cert for a CheckRequest; with der, the DER bytes
// are included. It returns nil for a nil cert.
func CertificateOf(cert *x509.Certificate, der bool) *Certificate {
	if cert == nil {
		return nil
	}
	sum := sha256.Sum256(cert.Raw)
	c := &Certificate{
		Subject: cert.Subject.String(),
		DnsSans: cert.DNSNames,
		Sha256:  hex.EncodeToString(sum[:]),
	}
	for _, u := range cert.URIs {
		c.UriSans = append(c.UriSans, u.String())
	}
	if der {
		c.Der = cert.Raw
	}
	return c
}

// Principal returns what Envoy calls a peer's principal: the first URI SAN,
// else the first DNS SAN, else the subject.
func Principal(c *Certificate) string {
	switch {
	case c == nil:
		return ""
	case len(c.UriSans) > 0:
		return c.UriSans[0]
	case len(c.DnsSans) > 0:
		return c.DnsSans[0]
	}
	return c.Subject
}
