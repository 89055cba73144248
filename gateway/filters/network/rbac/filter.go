package rbac

import (
	"strings"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Stats are the filter's counters, <stat_prefix>rbac.{allowed, denied,
// shadow_allowed, shadow_denied}: connections let through, closed, and in
// shadow mode those the policies would let through or close.
type Stats = rbacmatch.Stats

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
	src, dst rbacmatch.IPs
	ports    rbacmatch.Ports
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
			return rbacmatch.Decide(f.deny, i), f.policies[i].name
		}
	}
	return rbacmatch.Decide(f.deny, -1), ""
}

// matches reports whether every criterion p sets matches info.
func (p *policy) matches(info *netfilter.Info) bool {
	if p.any {
		return true
	}
	if len(p.src) > 0 && !p.src.Contains(info.RemoteAddr.Addr()) {
		return false
	}
	if len(p.dst) > 0 && !p.dst.Contains(info.LocalAddr.Addr()) {
		return false
	}
	if len(p.ports) > 0 && !p.ports.Contains(info.LocalAddr.Port()) {
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
	if f.stats.Count(f.shadow, allowed) {
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
