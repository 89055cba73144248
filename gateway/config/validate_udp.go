package config

import "github.com/sluice-proxy/sluice/gateway/registry"

// udpListener checks the shape of a listener's protocol: a udp listener
// serves HTTP/3, so it has no listener filters and exactly one filter chain,
// with a tls table, whose only filter is the HTTP connection manager (QUIC
// has no byte stream for network filters to see).
func (v *validator) udpListener(p string, l *Listener) {
	switch l.Protocol {
	case "", "tcp":
		return
	case "udp":
	default:
		v.errorf(p+".protocol", "must be tcp or udp, got %q", l.Protocol)
		return
	}
	if !l.ReusePortEnabled() {
		v.errorf(p+".reuse_port", "a udp listener needs reuse_port: QUIC packets must reach the worker that owns their connection")
	}
	if len(l.ListenerFilters) > 0 {
		v.errorf(p+".listener_filter", "a udp listener has no listener filters")
	}
	if len(l.FilterChains) != 1 {
		v.errorf(p+".filter_chain", "a udp listener has exactly one filter_chain")
		return
	}
	fc := &l.FilterChains[0]
	cp := indexKey(p+".filter_chain", 0)
	if fc.TLS == nil {
		v.errorf(cp+".tls", "a udp listener's filter_chain needs a tls table (QUIC is always encrypted)")
	}
	if len(fc.Filters) != 1 {
		v.errorf(cp+".filter", "a udp listener's filter_chain has exactly one filter, the HTTP connection manager")
		return
	}
	// The HTTP connection manager is the network filter that holds an HTTP
	// filter chain.
	f := &fc.Filters[0]
	if n, ok := f.Decoded.(NestedFilters); f.Decoded != nil && (!ok || nestedKind(n) != registry.HTTP) {
		v.errorf(cp+".filter[0].name", "a udp listener serves HTTP/3: its filter must be the HTTP connection manager, not %q", f.Name)
	}
}

func nestedKind(n NestedFilters) registry.Kind {
	k, _, _ := n.Nested()
	return k
}
