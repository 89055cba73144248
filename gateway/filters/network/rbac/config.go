// Package rbac is the network filter sluice.filters.network.rbac: it allows
// or denies each connection by policies on its source and destination
// addresses, destination port and server name (SNI), with the semantics of
// Envoy's network RBAC filter. See README.md.
package rbac

import (
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.network.rbac"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.Network,
		New:  func() registry.Config { return &Config{} },
	})
}

// The actions.
const (
	// Allow lets a connection through when a policy matches it and closes
	// it otherwise.
	Allow = rbacmatch.Allow
	// Deny closes a connection when a policy matches it and lets it
	// through otherwise.
	Deny = rbacmatch.Deny
)

// Config is the filter's TOML table.
type Config struct {
	// StatPrefix is prepended to the filter's stats (<stat_prefix>rbac.*).
	StatPrefix string `toml:"stat_prefix"`
	// Action is "ALLOW" (default, as in Envoy) or "DENY". Under ALLOW with
	// no policy, every connection is denied.
	Action string `toml:"action"`
	// Shadow evaluates the policies and counts the outcome
	// (shadow_allowed, shadow_denied) without enforcing it: every
	// connection passes (Envoy's shadow_rules).
	Shadow bool `toml:"shadow"`
	// Policies are tried in order; the first that matches decides.
	Policies []Policy `toml:"policy"`
}

// Policy matches a connection when every criterion it sets matches: one
// entry of a list is enough. A policy must set at least one criterion, or
// Any.
type Policy struct {
	// Name identifies the policy in logs. Required, unique.
	Name string `toml:"name"`
	// Any matches every connection.
	Any bool `toml:"any"`
	// SourceIPs are CIDRs ("10.0.0.0/8") or addresses of the downstream
	// peer (after the PROXY protocol, if any).
	SourceIPs []string `toml:"source_ips"`
	// DestinationIPs are CIDRs or addresses the connection was made to
	// (after original_dst or the PROXY protocol).
	DestinationIPs []string `toml:"destination_ips"`
	// DestinationPorts are the ports the connection was made to.
	DestinationPorts []int `toml:"destination_ports"`
	// ServerNames match the SNI: exact ("a.example.com",
	// case-insensitive) or a leading wildcard ("*.example.com" matches any
	// name ending in ".example.com"). A connection without SNI matches
	// none.
	ServerNames []string `toml:"server_names"`
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	slab, _ := ctx.Stats.(*stats.Slab)
	return c.build(slab)
}

// StatDefs implements stats.FilterStats: <stat_prefix>rbac.*, exported to
// Prometheus as the families rbac_* with the label rbac_prefix.
func (c *Config) StatDefs(string) []stats.Def { return rbacmatch.StatDefs("", c.StatPrefix) }

// build validates c and compiles its policies, with the counters in slab
// (nil: private ones).
func (c *Config) build(slab *stats.Slab) (*Factory, error) {
	f := &Factory{statPrefix: c.StatPrefix, shadow: c.Shadow, stats: rbacmatch.NewStats(slab, "", c.StatPrefix)}
	var err error
	if f.deny, err = rbacmatch.ParseAction(c.Action); err != nil {
		return nil, registry.Errorf("action", "%v", err)
	}
	seen := map[string]bool{}
	for i := range c.Policies {
		p, err := compile(&c.Policies[i])
		if err != nil {
			return nil, &registry.FieldError{Key: fmt.Sprintf("policy[%d].%s", i, err.Key), Err: err.Err}
		}
		if seen[p.name] {
			return nil, registry.Errorf(fmt.Sprintf("policy[%d].name", i), "duplicate policy %q", p.name)
		}
		seen[p.name] = true
		f.policies = append(f.policies, p)
	}
	return f, nil
}

// compile checks one policy and turns it into its matcher.
func compile(c *Policy) (policy, *registry.FieldError) {
	p := policy{name: c.Name, any: c.Any}
	if c.Name == "" {
		return p, fieldErr("name", "required")
	}
	var err error
	if p.src, err = rbacmatch.ParseIPs(c.SourceIPs); err != nil {
		return p, fieldErr("source_ips", "%v", err)
	}
	if p.dst, err = rbacmatch.ParseIPs(c.DestinationIPs); err != nil {
		return p, fieldErr("destination_ips", "%v", err)
	}
	if p.ports, err = rbacmatch.ParsePorts(c.DestinationPorts); err != nil {
		return p, fieldErr("destination_ports", "%v", err)
	}
	for _, sn := range c.ServerNames {
		sn = strings.ToLower(sn)
		if sn == "" || strings.Contains(sn[1:], "*") || (sn[0] == '*' && (!strings.HasPrefix(sn, "*.") || len(sn) < 3)) {
			return p, fieldErr("server_names", "invalid server name %q: exact, or a leading \"*.\" wildcard", sn)
		}
		if suffix, ok := strings.CutPrefix(sn, "*"); ok {
			p.suffixes = append(p.suffixes, suffix)
		} else {
			p.names = append(p.names, sn)
		}
	}
	empty := len(p.src) == 0 && len(p.dst) == 0 && len(p.ports) == 0 && len(p.names) == 0 && len(p.suffixes) == 0
	switch {
	case p.any && !empty:
		return p, fieldErr("any", "any = true excludes other criteria")
	case !p.any && empty:
		return p, fieldErr("any", "the policy sets no criterion: set one, or any = true")
	}
	return p, nil
}

func fieldErr(key, format string, args ...any) *registry.FieldError {
	return &registry.FieldError{Key: key, Err: fmt.Errorf(format, args...)}
}
