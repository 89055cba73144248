package tlsconn

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// Cert is one certificate named by a config, as read from its file.
type Cert struct {
	Path      string
	Serial    string // hexadecimal, as Envoy writes it
	DNS       []string
	URIs      []string
	IPs       []string
	Emails    []string
	NotBefore time.Time
	NotAfter  time.Time
	// Err is set when the file could not be read or held no certificate;
	// the other fields are then empty.
	Err error
}

// CertSet is the certificates of one TLS context: those that verify peers
// (ca_file) and the chain it presents (the leaf of each cert_file).
type CertSet struct {
	// Name says whose context it is: "listener <l> chain <c>" or
	// "cluster <c>".
	Name  string
	CA    []Cert
	Chain []Cert
}

// Inventory reads the certificates of every TLS context in cfg: each
// listener filter chain's, then each cluster's. Unreadable files are
// reported in Cert.Err, not skipped.
func Inventory(cfg *config.Config) []CertSet {
	var sets []CertSet
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		for j := range l.FilterChains {
			fc := &l.FilterChains[j]
			if fc.TLS == nil {
				continue
			}
			set := CertSet{Name: fmt.Sprintf("listener %s chain %s", l.Name, fc.Name)}
			if fc.TLS.CAFile != "" {
				set.CA = readCerts(fc.TLS.CAFile, false)
			}
			for _, c := range fc.TLS.Certificates {
				set.Chain = append(set.Chain, readCerts(c.CertFile, true)...)
			}
			sets = append(sets, set)
		}
	}
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		if c.TLS == nil || (c.TLS.CAFile == "" && c.TLS.CertFile == "") {
			continue
		}
		set := CertSet{Name: "cluster " + c.Name}
		if c.TLS.CAFile != "" {
			set.CA = readCerts(c.TLS.CAFile, false)
		}
		if c.TLS.CertFile != "" {
			set.Chain = readCerts(c.TLS.CertFile, true)
		}
		sets = append(sets, set)
	}
	return sets
}

// FirstExpiry returns the earliest NotAfter of the readable certificates
// in sets, and false if there is none.
func FirstExpiry(sets []CertSet) (time.Time, bool) {
	var first time.Time
	for _, s := range sets {
		for _, list := range [][]Cert{s.CA, s.Chain} {
			for _, c := range list {
				if c.Err == nil && (first.IsZero() || c.NotAfter.Before(first)) {
					first = c.NotAfter
				}
			}
		}
	}
	return first, !first.IsZero()
}

// readCerts parses the PEM certificates of path: the first only (a
// chain's leaf) when leafOnly, else every one (a CA bundle).
func readCerts(path string, leafOnly bool) []Cert {
	b, err := os.ReadFile(path)
	if err != nil {
		return []Cert{{Path: path, Err: fmt.Errorf("tlsconn: %w", err)}}
	}
	var out []Cert
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			out = append(out, Cert{Path: path, Err: fmt.Errorf("tlsconn: %s: %w", path, err)})
		} else {
			out = append(out, describe(path, x))
		}
		if leafOnly {
			break
		}
	}
	if len(out) == 0 {
		return []Cert{{Path: path, Err: fmt.Errorf("tlsconn: %s: no PEM certificate", path)}}
	}
	return out
}

func describe(path string, x *x509.Certificate) Cert {
	c := Cert{Path: path, Serial: fmt.Sprintf("%x", x.SerialNumber), DNS: x.DNSNames, Emails: x.EmailAddresses,
		NotBefore: x.NotBefore, NotAfter: x.NotAfter}
	for _, u := range x.URIs {
		c.URIs = append(c.URIs, u.String())
	}
	for _, ip := range x.IPAddresses {
		c.IPs = append(c.IPs, ip.String())
	}
	return c
}
