package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Listener filters that tell filter-chain matching what a connection
// carries (the config package names them without importing them).
const (
	tlsInspector  = "sluice.filters.listener.tls_inspector"
	httpInspector = "sluice.filters.listener.http_inspector"
)

// chainInspectors checks that a bound tcp listener whose chains match on
// what only a listener filter finds out (the SNI, TLS, the application
// protocol) has that filter: without it no connection ever matches such a
// chain, and every one that would is closed (or lands on the default
// chain). A virtual listener is not checked: the listener that hands it
// connections may have inspected them.
func (v *validator) chainInspectors(p string, l *Listener) {
	if l.UDP() || !l.Bound() {
		return
	}
	has := map[string]bool{}
	for _, f := range l.ListenerFilters {
		has[f.Name] = true
	}
	fix := fmt.Sprintf("add [[listener.listener_filter]] name = %q to listener %q", tlsInspector, l.Name)
	for j := range l.FilterChains {
		m := &l.FilterChains[j].Match
		mp := indexKey(p+".filter_chain", j) + ".match"
		if len(m.ServerNames) > 0 && !has[tlsInspector] {
			v.errorf(mp+".server_names", "no connection can match: the SNI is read by the listener filter %s, which this listener lacks (%s)", tlsInspector, fix)
		}
		if m.TransportProtocol == "tls" && !has[tlsInspector] {
			v.errorf(mp+".transport_protocol", "no connection can match: TLS is detected by the listener filter %s, which this listener lacks (%s)", tlsInspector, fix)
		}
		if len(m.ApplicationProtocols) > 0 && !has[tlsInspector] && !has[httpInspector] {
			v.errorf(mp+".application_protocols", "no connection can match: application protocols are read by the listener filter %s (ALPN) or %s (plaintext HTTP), which this listener lacks (add one as a [[listener.listener_filter]])", tlsInspector, httpInspector)
		}
	}
}

// chainMatches checks each chain's match criteria, that at most one chain
// is the default (and has no criteria), and that no two chains have the same
// criteria or share a combination of values of their lists: a connection
// must never match two chains equally well.
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
			continue
		}
		seen[key] = cp
		// As Envoy does, expand the lists: two chains that share one
		// combination of values (a server name, an ALPN protocol, ...)
		// would match the same connections equally well.
		leaves, ok := m.leaves(maxLeaves)
		if !ok {
			continue
		}
		for _, lf := range leaves {
			if prev, dup := seen["leaf "+lf]; dup {
				v.errorf(mp, "ambiguous: overlaps the match criteria of %s (a connection could match both equally well)", prev)
				break
			}
		}
		for _, lf := range leaves {
			seen["leaf "+lf] = cp
		}
	}
}

// maxLeaves bounds the combinations of criteria values a chain is expanded
// into for the overlap check; a chain with more is checked as a whole only.
const maxLeaves = 1 << 14

// leaves returns one key per combination of one value of each criterion
// (an unset criterion counts as one empty value), or false when there are
// more than limit.
func (m *FilterChainMatch) leaves(limit int) ([]string, bool) {
	list := func(ss []string, canon func(string) string) []string {
		if len(ss) == 0 {
			return []string{""}
		}
		out := make([]string, 0, len(ss))
		for _, s := range ss {
			out = append(out, canon(s))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	prefix := func(s string) string {
		if p, err := parsePrefix(s); err == nil {
			return p.String()
		}
		return s
	}
	st := m.SourceType
	if st == "any" {
		st = ""
	}
	var ports []string
	for _, p := range m.SourcePorts {
		ports = append(ports, fmt.Sprint(p))
	}
	dims := [][]string{
		{fmt.Sprint(m.DestinationPort)},
		list(m.PrefixRanges, prefix),
		list(m.ServerNames, strings.ToLower),
		{m.TransportProtocol},
		list(m.ApplicationProtocols, func(s string) string { return s }),
		{st},
		list(m.SourcePrefixRanges, prefix),
		list(ports, func(s string) string { return s }),
	}
	n := 1
	for _, d := range dims {
		if n *= len(d); n > limit {
			return nil, false
		}
	}
	keys := []string{""}
	for _, d := range dims {
		next := make([]string, 0, len(keys)*len(d))
		for _, k := range keys {
			for _, val := range d {
				next = append(next, k+"\x00"+val)
			}
		}
		keys = next
	}
	return keys, true
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
