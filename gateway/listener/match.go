package listener

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// matcher is a chain's compiled filter-chain criteria.
type matcher struct {
	destPort    int
	destRanges  []netip.Prefix
	serverNames []string // lowercase; "*.x" wildcards
	transport   string
	alpn        []string
	sourceType  string // "", "local", "external"
	srcRanges   []netip.Prefix
	srcPorts    []int
}

func newMatcher(m *config.FilterChainMatch) (*matcher, error) {
	mt := &matcher{
		destPort:   m.DestinationPort,
		transport:  m.TransportProtocol,
		alpn:       m.ApplicationProtocols,
		sourceType: m.SourceType,
		srcPorts:   m.SourcePorts,
	}
	if mt.sourceType == "any" {
		mt.sourceType = ""
	}
	for _, sn := range m.ServerNames {
		mt.serverNames = append(mt.serverNames, strings.ToLower(sn))
	}
	for _, r := range m.PrefixRanges {
		p, err := config.ParsePrefix(r)
		if err != nil {
			return nil, err
		}
		mt.destRanges = append(mt.destRanges, p)
	}
	for _, r := range m.SourcePrefixRanges {
		p, err := config.ParsePrefix(r)
		if err != nil {
			return nil, err
		}
		mt.srcRanges = append(mt.srcRanges, p)
	}
	return mt, nil
}

// criterion scores how a chain matches one criterion: -1 no match, 0 the
// chain leaves it unset, more is a more specific match.
type criterion func(m *matcher, info *netfilter.Info) int

// criteria in Envoy's order of precedence.
var criteria = []criterion{
	func(m *matcher, in *netfilter.Info) int { // destination port
		switch {
		case m.destPort == 0:
			return 0
		case int(in.LocalAddr.Port()) == m.destPort:
			return 1
		}
		return -1
	},
	func(m *matcher, in *netfilter.Info) int { return prefixScore(m.destRanges, in.LocalAddr.Addr()) },
	func(m *matcher, in *netfilter.Info) int {
		return serverNameScore(m.serverNames, strings.ToLower(in.ServerName))
	},
	func(m *matcher, in *netfilter.Info) int {
		switch {
		case m.transport == "":
			return 0
		case m.transport == in.TransportProtocol:
			return 1
		}
		return -1
	},
	func(m *matcher, in *netfilter.Info) int { return alpnScore(m.alpn, in.ALPN) },
	func(m *matcher, in *netfilter.Info) int {
		if m.sourceType == "" {
			return 0
		}
		a := in.RemoteAddr.Addr()
		local := a.IsLoopback() || a == in.LocalAddr.Addr()
		if (m.sourceType == "local") == local {
			return 1
		}
		return -1
	},
	func(m *matcher, in *netfilter.Info) int { return prefixScore(m.srcRanges, in.RemoteAddr.Addr()) },
	func(m *matcher, in *netfilter.Info) int {
		switch {
		case len(m.srcPorts) == 0:
			return 0
		case slices.Contains(m.srcPorts, int(in.RemoteAddr.Port())):
			return 1
		}
		return -1
	},
}

// prefixScore: unset 0; the longest matching prefix scores its length + 1.
func prefixScore(ranges []netip.Prefix, a netip.Addr) int {
	if len(ranges) == 0 {
		return 0
	}
	best := -1
	a = a.Unmap()
	for _, p := range ranges {
		if p.Contains(a) && p.Bits()+1 > best {
			best = p.Bits() + 1
		}
	}
	return best
}

// alpnScore: unset 0; otherwise the earlier in the client's list the first
// protocol the chain names, the higher: as in Envoy, the client's protocols
// are tried in its order of preference, and the chains naming the first one
// any chain names are kept.
func alpnScore(names, offered []string) int {
	if len(names) == 0 {
		return 0
	}
	for i, p := range offered {
		if slices.Contains(names, p) {
			return len(offered) - i
		}
	}
	return -1
}

// serverNameScore: unset 0; an exact name beats the longest wildcard.
func serverNameScore(names []string, sni string) int {
	if len(names) == 0 {
		return 0
	}
	best := -1
	for _, n := range names {
		switch {
		case n == sni:
			return 1 << 20
		case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(sni) > len(n)-1:
			best = max(best, len(n))
		}
	}
	return best
}

// match picks the chain for a connection: criterion by criterion, keep
// only the chains with the best score; a chain out of the running at any
// step is gone. No survivor: the default chain, or nil.
func (l *Listener) match(info *netfilter.Info) *Chain {
	if len(l.Chains) == 1 && l.Chains[0].m.empty() {
		return l.Chains[0]
	}
	var buf [16]*Chain
	cands := append(buf[:0], l.Chains...)
	for _, crit := range criteria {
		best := -1
		for _, c := range cands {
			best = max(best, crit(c.m, info))
		}
		if best < 0 {
			return l.Default
		}
		keep := cands[:0]
		for _, c := range cands {
			if crit(c.m, info) == best {
				keep = append(keep, c)
			}
		}
		cands = keep
	}
	if len(cands) == 0 {
		return l.Default
	}
	return cands[0]
}

func (m *matcher) empty() bool {
	return m.destPort == 0 && len(m.destRanges) == 0 && len(m.serverNames) == 0 && m.transport == "" &&
		len(m.alpn) == 0 && m.sourceType == "" && len(m.srcRanges) == 0 && len(m.srcPorts) == 0
}
