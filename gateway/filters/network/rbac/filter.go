package rbac

import (
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Stats are the filter's counters in this worker, named after the Envoy
// stats they will be exported as (<stat_prefix>rbac.<name>).
type Stats struct {
	// Allowed: <stat_prefix>rbac.allowed, connections let through.
	Allowed atomic.Uint64
	// Denied: <stat_prefix>rbac.denied, connections closed.
	Denied atomic.Uint64
	// ShadowAllowed: <stat_prefix>rbac.shadow_allowed, connections the
	// policies would allow, in shadow mode.
	ShadowAllowed atomic.Uint64
	// ShadowDenied: <stat_prefix>rbac.shadow_denied, connections the
	// policies would deny, in shadow mode.
	ShadowDenied atomic.Uint64
}

// Factory is a built rbac filter: immutable policies and atomic stats,
// safe for concurrent use.
type Factory struct {
	statPrefix string
	deny       bool // action DENY
	shadow     bool
	policies   []policy

	stats Stats
}

// policy is a compiled Policy.
type policy struct {
	name     string
	any      bool
	src, dst []netip.Prefix
	ports    []uint16
	names    []string // exact, lowercase
	suffixes []string // ".example.com" for "*.example.com"
}

// StatPrefix returns stat_prefix, for stats names <stat_prefix>rbac.*.
func (f *Factory) StatPrefix() string { return f.statPrefix }

// Stats returns the factory's counters.
func (f *Factory) Stats() *Stats { return &f.stats }

// Decide returns whether the connection described by info may pass under
// the policies, and the name of the policy that matched ("" for none).
// Shadow mode does not change the decision, only whether it is enforced.
func (f *Factory) Decide(info *netfilter.Info) (allowed bool, policy string) {
	for i := range f.policies {
		if f.policies[i].matches(info) {
			return !f.deny, f.policies[i].name
		}
	}
	return f.deny, ""
}

// matches reports whether every criterion p sets matches info.
func (p *policy) matches(info *netfilter.Info) bool {
	if p.any {
		return true
	}
	if len(p.src) > 0 && !inPrefixes(p.src, info.RemoteAddr.Addr()) {
		return false
	}
	if len(p.dst) > 0 && !inPrefixes(p.dst, info.LocalAddr.Addr()) {
		return false
	}
	if len(p.ports) > 0 && !containsPort(p.ports, info.LocalAddr.Port()) {
		return false
	}
	if len(p.names) > 0 || len(p.suffixes) > 0 {
		if !p.matchesName(info.ServerName) {
			return false
		}
	}
	return true
}

func (p *policy) matchesName(sni string) bool {
	if sni == "" {
		return false
	}
	sni = strings.ToLower(sni)
	for _, n := range p.names {
		if n == sni {
			return true
		}
	}
	for _, s := range p.suffixes {
		if len(sni) > len(s) && strings.HasSuffix(sni, s) {
			return true
		}
	}
	return false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func containsPort(ports []uint16, port uint16) bool {
	for _, p := range ports {
		if p == port {
			return true
		}
	}
	return false
}

// NewFilter implements netfilter.Factory.
func (f *Factory) NewFilter(cb netfilter.Callbacks) netfilter.Filter {
	return &filter{f: f, cb: cb}
}

// filter enforces the policies on one connection. Its methods run on the
// connection's goroutine.
type filter struct {
	f  *Factory
	cb netfilter.Callbacks
}

// netfilter.ReadFilter

// OnNewConnection implements netfilter.ReadFilter. Everything the policies
// look at is known when the filter chain starts (the listener filters have
// run), so the decision is taken here, before any byte is read; a denied
// connection is closed (StopIteration without a resume).
func (r *filter) OnNewConnection() netfilter.Status {
	f := r.f
	allowed, _ := f.Decide(r.cb.Conn().Info())
	switch {
	case f.shadow && allowed:
		f.stats.ShadowAllowed.Add(1)
	case f.shadow:
		f.stats.ShadowDenied.Add(1)
	case allowed:
		f.stats.Allowed.Add(1)
	default:
		f.stats.Denied.Add(1)
		r.cb.Conn().Close()
		return netfilter.StopIteration
	}
	return netfilter.Continue
}

// OnData implements netfilter.ReadFilter: bytes pass unchanged.
func (r *filter) OnData(*buffer.Buffer, bool) netfilter.Status { return netfilter.Continue }

// netfilter.Filter

// OnEvent implements netfilter.Filter.
func (r *filter) OnEvent(netfilter.Event) {}

var (
	_ netfilter.Factory    = (*Factory)(nil)
	_ netfilter.ReadFilter = (*filter)(nil)
)
