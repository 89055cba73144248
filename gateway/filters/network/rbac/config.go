// Package rbac is the network filter sluice.filters.network.rbac: it allows
// or denies each connection by policies on its source and destination
// addresses, destination port and server name (SNI), with the semantics of
// Envoy's network RBAC filter. See README.md.
package rbac

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/registry"
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
	Allow = "ALLOW"
	// Deny closes a connection when a policy matches it and lets it
	// through otherwise.
	Deny = "DENY"
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
func (c *Config) Build(*registry.BuildContext) (any, error) { return c.build() }

// build validates c and compiles its policies.
func (c *Config) build() (*Factory, error) {
	f := &Factory{statPrefix: c.StatPrefix, shadow: c.Shadow}
	switch c.Action {
	case "", Allow:
		f.deny = false
	case Deny:
		f.deny = true
	default:
		return nil, registry.Errorf("action", "must be %q or %q, got %q", Allow, Deny, c.Action)
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
	if p.src, err = prefixes(c.SourceIPs); err != nil {
		return p, fieldErr("source_ips", "%v", err)
	}
	if p.dst, err = prefixes(c.DestinationIPs); err != nil {
		return p, fieldErr("destination_ips", "%v", err)
	}
	for _, port := range c.DestinationPorts {
		if port < 1 || port > 65535 {
			return p, fieldErr("destination_ports", "port %d not in 1..65535", port)
		}
		p.ports = append(p.ports, uint16(port))
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

// prefixes parses CIDRs and bare addresses (a /32 or /128).
func prefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
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
		out = append(out, p.Masked())
	}
	return out, nil
}
