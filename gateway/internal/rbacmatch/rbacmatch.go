// Package rbacmatch holds what the network and HTTP RBAC filters share:
// the action and its outcome counters (allowed, denied, shadow_allowed,
// shadow_denied, exported with Prometheus labels), address and port sets,
// and Envoy's string matcher, compiled once per config and matched without
// allocating.
package rbacmatch

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

// The actions, as Envoy spells them.
const (
	// Allow lets a request or connection through when a policy matches
	// it, and refuses it otherwise.
	Allow = "ALLOW"
	// Deny refuses a request or connection when a policy matches it, and
	// lets it through otherwise.
	Deny = "DENY"
)

// ParseAction returns whether action is DENY; "" is ALLOW (Envoy's
// default).
func ParseAction(action string) (deny bool, err error) {
	switch action {
	case "", Allow:
		return false, nil
	case Deny:
		return true, nil
	}
	return false, fmt.Errorf("must be %q or %q, got %q", Allow, Deny, action)
}

// Decide returns whether the policies let a request or connection
// through, from the action and the index of the first policy that matched
// it (-1 for none): under ALLOW only a match passes, under DENY only a
// miss. Shadow mode changes whether the outcome is enforced, not the
// outcome.
func Decide(deny bool, matched int) (allowed bool) {
	if matched >= 0 {
		return !deny
	}
	return deny
}

// StatNames are the counters' names after <prefix>rbac., in the order of
// the Stats fields.
var StatNames = []string{"allowed", "denied", "shadow_allowed", "shadow_denied"}

// Stats are an RBAC filter's counters: <scope><stat_prefix>rbac.<name>.
type Stats struct {
	// Allowed counts what was let through; Denied what was refused.
	Allowed, Denied *stats.Counter
	// ShadowAllowed and ShadowDenied count, in shadow mode, what the
	// policies would have let through or refused.
	ShadowAllowed, ShadowDenied *stats.Counter
}

// NewStats resolves the counters named under scope (the HTTP connection
// manager's "http.<stat_prefix>.", or "" for a network filter) and
// statPrefix in slab; a nil slab gives private counters.
func NewStats(slab *stats.Slab, scope, statPrefix string) Stats {
	c := func(i int) *stats.Counter { return slab.Counter(scope + statPrefix + "rbac." + StatNames[i]) }
	return Stats{Allowed: c(0), Denied: c(1), ShadowAllowed: c(2), ShadowDenied: c(3)}
}

// Count records an outcome and reports whether it must be enforced as a
// refusal: never in shadow mode.
func (s *Stats) Count(shadow, allowed bool) (refuse bool) {
	switch {
	case shadow && allowed:
		s.ShadowAllowed.Inc()
	case shadow:
		s.ShadowDenied.Inc()
	case allowed:
		s.Allowed.Inc()
	default:
		s.Denied.Inc()
		return true
	}
	return false
}

// StatDefs declares the counters under scope and statPrefix (see
// NewStats). They are exported to Prometheus as one family per counter,
// <family>_<name> (family "rbac" for network filters, "http_rbac" for HTTP
// ones), with the HTTP connection manager's prefix and the filter's
// stat_prefix (without its trailing dot) as labels, so that the prefixes
// do not multiply the families.
func StatDefs(scope, statPrefix string) []stats.Def {
	family := "rbac_"
	var labels []stats.Label
	if hcm, ok := strings.CutPrefix(scope, "http."); ok && scope != "" {
		family = "http_rbac_"
		labels = append(labels, stats.Label{Name: "http_conn_manager_prefix", Value: strings.TrimSuffix(hcm, ".")})
	}
	if p := strings.TrimSuffix(statPrefix, "."); p != "" {
		labels = append(labels, stats.Label{Name: "rbac_prefix", Value: p})
	}
	defs := make([]stats.Def, len(StatNames))
	for i, n := range StatNames {
		defs[i] = stats.Def{Name: scope + statPrefix + "rbac." + n, Kind: stats.KindCounter, Family: family + n, Labels: labels}
	}
	return defs
}

// IPs is a set of address ranges.
type IPs []netip.Prefix

// ParseIPs parses CIDRs ("10.0.0.0/8") and bare addresses (a /32 or
// /128). Zones are refused. An IPv4-mapped IPv6 range of at least 96 bits
// ("::ffff:10.0.0.0/104", "::ffff:10.0.0.1") is taken as the IPv4 range
// it maps: Contains compares addresses unmapped, so it would otherwise
// match no client at all, and a DENY policy written that way for a
// dual-stack listener would let its clients through.
func ParseIPs(ss []string) (IPs, error) {
	var out IPs
	for _, s := range ss {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			if err == nil && a.Zone() != "" {
				return nil, fmt.Errorf("invalid address or CIDR %q: zones are not supported", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil || !p.IsValid() {
			return nil, fmt.Errorf("invalid address or CIDR %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Contains reports whether a (an IPv4-mapped IPv6 address counts as IPv4)
// is in one of the ranges.
func (ps IPs) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Ports is a set of TCP ports.
type Ports []uint16

// ParsePorts checks that every port is in 1..65535.
func ParsePorts(ps []int) (Ports, error) {
	var out Ports
	for _, p := range ps {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("port %d not in 1..65535", p)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// Contains reports whether port is in the set.
func (ps Ports) Contains(port uint16) bool {
	for _, p := range ps {
		if p == port {
			return true
		}
	}
	return false
}
