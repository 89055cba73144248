// Package tlsconn builds the TLS transport sockets: the server side of a
// filter chain that terminates TLS (certificates chosen by SNI, ALPN,
// versions, ciphers, curves, client certificate validation, session tickets
// with keys shared by every worker and generation, OCSP stapling) and the
// client side towards a cluster's hosts.
//
// Configs are built once per generation (files are read then, so a reload
// picks up renewed certificates) and are immutable afterwards.
package tlsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// TicketKeys are session ticket keys (the first encrypts, all decrypt).
type TicketKeys [][32]byte

// Server returns the tls.Config of a chain. alpnDefault is used when the
// config has no alpn key (the HTTP connection manager passes its
// protocols); `alpn = []` turns ALPN off. keys may be empty: then the process's random keys are used and
// a session resumes only on the worker that issued its ticket.
func Server(c *config.TLSContext, alpnDefault []string, keys TicketKeys) (*tls.Config, error) {
	if len(c.Certificates) == 0 {
		return nil, registry.Errorf("certificate", "at least one certificate is required")
	}
	tc := &tls.Config{NextProtos: c.ALPN}
	if c.ALPN == nil {
		tc.NextProtos = alpnDefault
	}
	for i, cf := range c.Certificates {
		cert, err := tls.LoadX509KeyPair(cf.CertFile, cf.KeyFile)
		if err != nil {
			return nil, registry.Errorf(fmt.Sprintf("certificate[%d]", i), "%v", err)
		}
		if cf.OCSPStapleFile != "" {
			if cert.OCSPStaple, err = os.ReadFile(cf.OCSPStapleFile); err != nil {
				return nil, registry.Errorf(fmt.Sprintf("certificate[%d].ocsp_staple_file", i), "%v", err)
			}
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	if len(tc.Certificates) > 1 {
		tc.GetCertificate = exactNameCertificate(tc.Certificates)
	}
	var err error
	if tc.MinVersion, err = version(c.MinVersion, tls.VersionTLS12); err != nil {
		return nil, registry.Errorf("min_version", "%v", err)
	}
	if tc.MaxVersion, err = version(c.MaxVersion, tls.VersionTLS13); err != nil {
		return nil, registry.Errorf("max_version", "%v", err)
	}
	if tc.MinVersion > tc.MaxVersion {
		return nil, registry.Errorf("min_version", "is above max_version")
	}
	if tc.CipherSuites, err = ciphers(c.CipherSuites); err != nil {
		return nil, registry.Errorf("cipher_suites", "%v", err)
	}
	if tc.CurvePreferences, err = curves(c.Curves); err != nil {
		return nil, registry.Errorf("curves", "%v", err)
	}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, registry.Errorf("ca_file", "%v", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if c.RequireClientCertificate {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if c.RequireClientCertificate {
		return nil, registry.Errorf("require_client_certificate", "needs ca_file to verify client certificates")
	}
	if len(c.MatchSubjectAltNames) > 0 {
		if c.CAFile == "" {
			// without a CA no client certificate is asked for, so the
			// names would never be checked (Envoy refuses this too)
			return nil, registry.Errorf("match_subject_alt_names", "needs ca_file to verify client certificates")
		}
		sans := c.MatchSubjectAltNames
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // no client certificate: ClientAuth decides
			}
			return matchSANs(cs.PeerCertificates[0], sans)
		}
	}
	if c.SessionTickets != nil && !*c.SessionTickets {
		tc.SessionTicketsDisabled = true
	} else if len(keys) > 0 {
		tc.SetSessionTicketKeys(keys)
	}
	return tc, nil
}

// ServeWithoutCommonALPN makes tc, a chain's server config with ALPN
// protocols, complete the handshake of a client whose ALPN protocols share
// none with tc's without an application protocol, as Envoy does (BoringSSL
// declines to select one and goes on), instead of failing it with
// no_application_protocol as crypto/tls does: a client offering only
// http/1.0 (curl --http1.0) is served. Such a handshake runs on a copy of
// tc without NextProtos whose session tickets are sealed and opened with
// tc's current keys, so that ticket-key rotation reaches it. Call it once
// tc is complete, for TCP chains only (an HTTP/3 chain negotiates h3).
func ServeWithoutCommonALPN(tc *tls.Config) {
	if len(tc.NextProtos) == 0 || tc.GetConfigForClient != nil {
		return
	}
	noALPN := tc.Clone()
	noALPN.NextProtos = nil
	noALPN.WrapSession = tc.EncryptTicket
	noALPN.UnwrapSession = tc.DecryptTicket
	protos := slices.Clone(tc.NextProtos)
	tc.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		for _, p := range chi.SupportedProtos {
			// crypto/tls itself lets an http/1.1 client on without
			// ALPN when only h2 is offered
			if slices.Contains(protos, p) || p == "http/1.1" && slices.Contains(protos, "h2") {
				return nil, nil
			}
		}
		if len(chi.SupportedProtos) == 0 {
			return nil, nil
		}
		return noALPN, nil
	}
}

// Client returns the tls.Config for dialling a cluster's host at hostName
// (the endpoint's host, the default SNI). auto_sni and auto_san_validation
// are applied per server name by WithServerName.
func Client(c *config.UpstreamTLSContext, hostName string) (*tls.Config, error) {
	tc := &tls.Config{
		ServerName:         c.SNI,
		NextProtos:         c.ALPN,
		InsecureSkipVerify: c.InsecureSkipVerify,
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if tc.ServerName == "" {
		tc.ServerName = hostName
	}
	var err error
	if tc.MinVersion, err = version(c.MinVersion, tls.VersionTLS12); err != nil {
		return nil, registry.Errorf("min_version", "%v", err)
	}
	if tc.MaxVersion, err = version(c.MaxVersion, tls.VersionTLS13); err != nil {
		return nil, registry.Errorf("max_version", "%v", err)
	}
	if c.CAFile != "" {
		if tc.RootCAs, err = loadPool(c.CAFile); err != nil {
			return nil, registry.Errorf("ca_file", "%v", err)
		}
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, registry.Errorf("cert_file", "%v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if sans := c.MatchSubjectAltNames; len(sans) > 0 {
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tlsconn: upstream sent no certificate")
			}
			return matchSANs(cs.PeerCertificates[0], sans)
		}
	}
	return tc, nil
}

// WithServerName returns a copy of the client config base (as Client built
// it, before any auto_san_validation) that sends serverName as SNI and, with
// validateSAN, accepts only a host certificate with a subject alternative
// name matching serverName (a DNS name, wildcards as in RFC 6125, or an IP
// address), whether or not the chain is verified. It shares base's session
// cache, whose entries are keyed by server name.
func WithServerName(base *tls.Config, serverName string, validateSAN bool) *tls.Config {
	tc := base.Clone()
	tc.ServerName = serverName
	if !validateSAN {
		return tc
	}
	next := base.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tlsconn: upstream sent no certificate")
		}
		if err := cs.PeerCertificates[0].VerifyHostname(serverName); err != nil {
			return fmt.Errorf("tlsconn: auto_san_validation: %w", err)
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
	return tc
}

// exactNameCertificate returns a GetCertificate that picks, among certs,
// the first whose DNS subject alternative names hold the client's server
// name exactly (not through a wildcard) and that the client supports. It
// returns no certificate otherwise, and crypto/tls then takes the first
// certificate valid for the name (a wildcard one), else the first: Envoy's
// order, exact name, then wildcard, then the first certificate, whatever
// the order of the certificates in the config.
func exactNameCertificate(certs []tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	byName := map[string][]int{}
	for i := range certs {
		leaf := certs[i].Leaf
		if leaf == nil {
			var err error
			if leaf, err = x509.ParseCertificate(certs[i].Certificate[0]); err != nil {
				continue
			}
		}
		for _, n := range leaf.DNSNames {
			if !strings.Contains(n, "*") {
				n = strings.ToLower(n)
				byName[n] = append(byName[n], i)
			}
		}
	}
	return func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		for _, i := range byName[strings.ToLower(chi.ServerName)] {
			if chi.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		return nil, nil
	}
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

// matchSANs accepts a certificate with any of the names among its DNS, URI,
// email or IP subject alternative names.
func matchSANs(cert *x509.Certificate, want []string) error {
	for _, w := range want {
		if slices.Contains(cert.DNSNames, w) || slices.Contains(cert.EmailAddresses, w) {
			return nil
		}
		for _, u := range cert.URIs {
			if u.String() == w {
				return nil
			}
		}
		for _, ip := range cert.IPAddresses {
			if ip.String() == w {
				return nil
			}
		}
	}
	return fmt.Errorf("tlsconn: peer certificate matches none of the subject alt names %s", strings.Join(want, ", "))
}

func version(s string, def uint16) (uint16, error) {
	switch s {
	case "":
		return def, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("must be 1.2 or 1.3, not %q", s)
}

func ciphers(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	known := map[string]uint16{}
	for _, c := range tls.CipherSuites() {
		known[c.Name] = c.ID
	}
	var ids []uint16
	for _, n := range names {
		id, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("unknown or insecure cipher suite %q", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func curves(names []string) ([]tls.CurveID, error) {
	byName := map[string]tls.CurveID{
		"X25519": tls.X25519, "P256": tls.CurveP256, "P384": tls.CurveP384, "P521": tls.CurveP521,
		"X25519MLKEM768": tls.X25519MLKEM768,
	}
	var ids []tls.CurveID
	for _, n := range names {
		id, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown curve %q", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// ServedLeaf returns the leaf of the certificate the server config tc
// presents to a client that asked for serverName, chosen as crypto/tls and
// exactNameCertificate choose it: the only one; else the first whose DNS
// names hold serverName exactly, else the first valid for it (a wildcard),
// else the first. It does not see the client's signature algorithms, for
// which crypto/tls may skip a certificate: with two certificates for the
// same name (RSA and ECDSA) it names the first. The HTTP connection
// manager's x-forwarded-client-cert By= field reads its URI SANs.
func ServedLeaf(tc *tls.Config, serverName string) *x509.Certificate {
	certs := tc.Certificates
	if len(certs) == 0 {
		return nil
	}
	leaf := func(c *tls.Certificate) *x509.Certificate {
		if c.Leaf != nil {
			return c.Leaf
		}
		l, _ := x509.ParseCertificate(c.Certificate[0])
		return l
	}
	if len(certs) == 1 || serverName == "" {
		return leaf(&certs[0])
	}
	for i := range certs {
		if l := leaf(&certs[i]); l != nil {
			for _, n := range l.DNSNames {
				if !strings.Contains(n, "*") && strings.EqualFold(n, serverName) {
					return l
				}
			}
		}
	}
	for i := range certs {
		if l := leaf(&certs[i]); l != nil && l.VerifyHostname(serverName) == nil {
			return l
		}
	}
	return leaf(&certs[0])
}
