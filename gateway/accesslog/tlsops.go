package accesslog

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"strings"
)

// appendTLS appends the value of a %DOWNSTREAM_TLS_…% or
// %DOWNSTREAM_PEER_…% operator: nothing on a plaintext connection, or
// without a client certificate for the peer's.
func appendTLS(dst []byte, kind opKind, cs *tls.ConnectionState) []byte {
	if cs == nil {
		return dst
	}
	switch kind {
	case opTLSVersion:
		switch cs.Version {
		case tls.VersionTLS12:
			return append(dst, "TLSv1.2"...)
		case tls.VersionTLS13:
			return append(dst, "TLSv1.3"...)
		}
		return dst
	case opTLSCipher:
		if n, ok := opensslCiphers[cs.CipherSuite]; ok {
			return append(dst, n...)
		}
		return append(dst, tls.CipherSuiteName(cs.CipherSuite)...)
	}
	if len(cs.PeerCertificates) == 0 {
		return dst
	}
	c := cs.PeerCertificates[0]
	switch kind {
	case opPeerSubject:
		return append(dst, c.Subject.String()...)
	case opPeerIssuer:
		return append(dst, c.Issuer.String()...)
	case opPeerURISAN:
		for i, u := range c.URIs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, u.String()...)
		}
		return dst
	case opPeerDNSSAN:
		return append(dst, strings.Join(c.DNSNames, ",")...)
	case opPeerFingerprint:
		sum := sha256.Sum256(c.Raw)
		return hex.AppendEncode(dst, sum[:])
	case opPeerSerial:
		return c.SerialNumber.Append(dst, 16)
	}
	return dst
}

// opensslCiphers are the OpenSSL names Envoy prints for the suites Go
// negotiates; a suite missing here prints under Go's (IANA) name.
var opensslCiphers = map[uint16]string{
	tls.TLS_AES_128_GCM_SHA256:                        "TLS_AES_128_GCM_SHA256",
	tls.TLS_AES_256_GCM_SHA384:                        "TLS_AES_256_GCM_SHA384",
	tls.TLS_CHACHA20_POLY1305_SHA256:                  "TLS_CHACHA20_POLY1305_SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ECDHE-ECDSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "ECDHE-RSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ECDHE-ECDSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "ECDHE-RSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "ECDHE-RSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:          "ECDHE-ECDSA-AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:            "ECDHE-RSA-AES128-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:          "ECDHE-ECDSA-AES256-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:            "ECDHE-RSA-AES256-SHA",
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               "AES128-GCM-SHA256",
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               "AES256-GCM-SHA384",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:                  "AES128-SHA",
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:                  "AES256-SHA",
}
