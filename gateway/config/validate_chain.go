package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// chainMatches checks each chain's match criteria, that at most one chain
// is the default (and has no criteria), and that no two chains have the same
// criteria: a connection must never match two chains equally well.
func (v *validator) chainMatches(p string, l *Listener) {
	seen := map[string]string{}
	defaults := 0
	for j := range l.FilterChains {
		fc := &l.FilterChains[j]
		cp := indexKey(p+".filter_chain", j)
		m := &fc.Match
		mp := cp + ".match"
		if m.DestinationPort < 0 || m.DestinationPort > 65535 {
			v.errorf(mp+".destination_port", "must be in 0..65535")
		}
		for _, r := range m.PrefixRanges {
			if _, err := parsePrefix(r); err != nil {
				v.errorf(mp+".prefix_ranges", "%v", err)
			}
		}
		for _, r := range m.SourcePrefixRanges {
			if _, err := parsePrefix(r); err != nil {
				v.errorf(mp+".source_prefix_ranges", "%v", err)
			}
		}
		for _, sp := range m.SourcePorts {
			if sp < 1 || sp > 65535 {
				v.errorf(mp+".source_ports", "port %d not in 1..65535", sp)
			}
		}
		for _, sn := range m.ServerNames {
			if sn == "" || strings.Contains(sn[1:], "*") || (sn[0] == '*' && !strings.HasPrefix(sn, "*.")) {
				v.errorf(mp+".server_names", "invalid server name %q: exact, or a leading \"*.\" wildcard", sn)
			}
		}
		switch m.TransportProtocol {
		case "", "raw_buffer", "tls":
		default:
			v.errorf(mp+".transport_protocol", "must be raw_buffer or tls, got %q", m.TransportProtocol)
		}
		switch m.SourceType {
		case "", "any", "local", "external":
		default:
			v.errorf(mp+".source_type", "must be any, local or external, got %q", m.SourceType)
		}
		key := m.key()
		if fc.Default {
			defaults++
			if defaults > 1 {
				v.errorf(cp+".default", "only one filter_chain may be the default")
			}
			if key != (&FilterChainMatch{}).key() {
				v.errorf(mp, "the default filter_chain cannot have match criteria")
			}
			continue
		}
		if prev, dup := seen[key]; dup {
			v.errorf(mp, "ambiguous: same match criteria as %s", prev)
		}
		seen[key] = cp
	}
}

// key is a canonical form of the criteria, for the ambiguity check.
func (m *FilterChainMatch) key() string {
	norm := func(ss []string) []string {
		out := slices.Clone(ss)
		for i := range out {
			out[i] = strings.ToLower(out[i])
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	ports := slices.Clone(m.SourcePorts)
	slices.Sort(ports)
	st := m.SourceType
	if st == "any" {
		st = ""
	}
	return fmt.Sprint(m.DestinationPort, norm(m.PrefixRanges), norm(m.ServerNames), m.TransportProtocol,
		norm(m.ApplicationProtocols), st, norm(m.SourcePrefixRanges), slices.Compact(ports))
}

// parsePrefix parses a CIDR, or a bare address as a full-length prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefix is parsePrefix for the listener's matcher.
func ParsePrefix(s string) (netip.Prefix, error) { return parsePrefix(s) }
