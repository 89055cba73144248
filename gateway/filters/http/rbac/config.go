// Package rbac is the HTTP filter sluice.filters.http.rbac: it allows or
// denies each request by ordered policies of permissions (what the
// request asks for: method, path, headers, destination) and principals
// (who asks: addresses, headers, client certificate), with the semantics
// of Envoy's envoy.filters.http.rbac. A denied request is answered 403
// "RBAC: access denied" without reaching the upstream. See README.md.
package rbac

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.rbac"

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.HTTP,
		New:  func() registry.Config { return &Config{} },
	})
}

// The actions.
const (
	// Allow lets a request through when a policy matches it and answers
	// 403 otherwise.
	Allow = rbacmatch.Allow
	// Deny answers 403 to a request a policy matches and lets the others
	// through.
	Deny = rbacmatch.Deny
)

// StringMatcher is Envoy's StringMatcher: exactly one of exact, prefix,
// suffix, contains and regex (RE2, whole value), with ignore_case.
type StringMatcher = rbacmatch.StringMatcher

// Config is the filter's TOML table.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.rbac"
//	[listener.filter_chain.filter.config.http_filter.config]
//	action = "ALLOW"
//	[[listener.filter_chain.filter.config.http_filter.config.policy]]
//	name = "admin-from-office"
//	permissions = [{ url_path = { prefix = "/admin" } }]
//	principals  = [{ remote_ip = ["192.0.2.0/24"] }]
type Config struct {
	// StatPrefix is put between the HTTP connection manager's scope and
	// the counters: http.<hcm stat_prefix>.<stat_prefix>rbac.*.
	StatPrefix string `toml:"stat_prefix"`
	// Action is "ALLOW" (default, as in Envoy) or "DENY". Under ALLOW with
	// no policy, every request is denied.
	Action string `toml:"action"`
	// Shadow evaluates the policies and counts the outcome
	// (shadow_allowed, shadow_denied) without enforcing it: every request
	// passes (Envoy's shadow_rules).
	Shadow bool `toml:"shadow"`
	// Policies are tried in order; the first that matches decides.
	Policies []Policy `toml:"policy"`
}

// Policy matches a request when one of its permissions and one of its
// principals match it (Envoy's Policy). Both lists are required.
type Policy struct {
	// Name identifies the policy in the response details
	// (rbac_access_denied_matched_policy[<name>]). Required, unique.
	Name        string       `toml:"name"`
	Permissions []Permission `toml:"permissions"`
	Principals  []Principal  `toml:"principals"`
}

// HeaderMatcher is Envoy's HeaderMatcher: a request header (lowercase
// name; ":method", ":path", ":authority" or "host", and ":scheme" read the
// request head) and exactly one of Exact, Prefix, Suffix, Contains, Regex
// and Present. Repeated fields are matched joined by ",". A missing header
// matches nothing, inverted or not, except an inverted Present.
type HeaderMatcher struct {
	Name       string  `toml:"name"`
	Exact      *string `toml:"exact"`
	Prefix     string  `toml:"prefix"`
	Suffix     string  `toml:"suffix"`
	Contains   string  `toml:"contains"`
	Regex      string  `toml:"regex"`
	Present    bool    `toml:"present"`
	IgnoreCase bool    `toml:"ignore_case"`
	// InvertMatch negates the result on a present header.
	InvertMatch bool `toml:"invert_match"`
}

// Permission is one thing a request may ask for (Envoy's Permission):
// exactly one field is set.
type Permission struct {
	// Any matches every request.
	Any bool `toml:"any"`
	// Header matches a request header.
	Header *HeaderMatcher `toml:"header"`
	// URLPath matches the path without its query.
	URLPath *StringMatcher `toml:"url_path"`
	// Methods matches a request whose method is one of these (a shorthand
	// for a header matcher on ":method").
	Methods []string `toml:"methods"`
	// DestinationIP matches the address the connection was made to (after
	// original_dst or the PROXY protocol): CIDRs or addresses, any one.
	DestinationIP []string `toml:"destination_ip"`
	// DestinationPort matches the port the connection was made to.
	DestinationPort int `toml:"destination_port"`
	// RequestedServerName matches the SNI ("" without one).
	RequestedServerName *StringMatcher `toml:"requested_server_name"`
	// AndRules matches when every rule matches; OrRules when one does;
	// NotRule when its rule does not.
	AndRules []Permission `toml:"and_rules"`
	OrRules  []Permission `toml:"or_rules"`
	NotRule  *Permission  `toml:"not_rule"`
}

// Principal is one way of identifying who asks (Envoy's Principal):
// exactly one field is set.
type Principal struct {
	// Any matches every request.
	Any bool `toml:"any"`
	// DirectRemoteIP matches the connection's physical peer, before the
	// PROXY protocol and x-forwarded-for.
	DirectRemoteIP []string `toml:"direct_remote_ip"`
	// RemoteIP matches the client's address as the connection manager
	// sees it: the last x-forwarded-for address, which is the peer's
	// (after the PROXY protocol) with use_remote_address, and the one the
	// previous proxy appended without it; the peer's when there is none.
	RemoteIP []string `toml:"remote_ip"`
	// SourceIP matches the peer after the PROXY protocol, ignoring
	// x-forwarded-for.
	SourceIP []string `toml:"source_ip"`
	// Header matches a request header.
	Header *HeaderMatcher `toml:"header"`
	// Authenticated matches a client that presented a certificate (mTLS).
	Authenticated *Authenticated `toml:"authenticated"`
	// AndIDs matches when every principal matches; OrIDs when one does;
	// NotID when its principal does not.
	AndIDs []Principal `toml:"and_ids"`
	OrIDs  []Principal `toml:"or_ids"`
	NotID  *Principal  `toml:"not_id"`
}

// Authenticated is Envoy's Principal.Authenticated.
type Authenticated struct {
	// PrincipalName, if set, must match one of the certificate's URI
	// SANs, else one of its DNS SANs, else its subject (RFC 2253 form,
	// "CN=client,O=Example"). Unset, any client certificate matches.
	PrincipalName *StringMatcher `toml:"principal_name"`
}

// StatDefs implements stats.FilterStats: http.<hcm>.<stat_prefix>rbac.*,
// exported to Prometheus as the families http_rbac_* with the labels
// http_conn_manager_prefix and rbac_prefix.
func (c *Config) StatDefs(scope string) []stats.Def { return rbacmatch.StatDefs(scope, c.StatPrefix) }

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	slab, _ := ctx.Stats.(*stats.Slab)
	return c.build(slab, ctx.StatScope)
}

// maxDepth bounds the nesting of and/or/not rules.
const maxDepth = 16

// build validates c and compiles its policies, with the counters in slab
// (nil: private ones) under scope.
func (c *Config) build(slab *stats.Slab, scope string) (*Factory, error) {
	f := &Factory{shadow: c.Shadow, stats: rbacmatch.NewStats(slab, scope, c.StatPrefix)}
	if strings.ContainsAny(c.StatPrefix, " \t\n{}\"=") {
		return nil, registry.Errorf("stat_prefix", "invalid stat prefix %q", c.StatPrefix)
	}
	var err error
	if f.deny, err = rbacmatch.ParseAction(c.Action); err != nil {
		return nil, registry.Errorf("action", "%v", err)
	}
	seen := map[string]bool{}
	for i := range c.Policies {
		key := fmt.Sprintf("policy[%d]", i)
		p, err := compilePolicy(&c.Policies[i])
		if err != nil {
			return nil, prefixed(key, err)
		}
		if seen[p.name] {
			return nil, registry.Errorf(key+".name", "duplicate policy %q", p.name)
		}
		seen[p.name] = true
		f.policies = append(f.policies, p)
	}
	f.noneDetails = "rbac_access_denied_matched_policy[none]"
	return f, nil
}

// prefixed puts key in front of a FieldError's key.
func prefixed(key string, err error) error {
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		return &registry.FieldError{Key: key + "." + fe.Key, Err: fe.Err}
	}
	return registry.Errorf(key, "%v", err)
}

func compilePolicy(c *Policy) (policy, error) {
	p := policy{name: c.Name, details: "rbac_access_denied_matched_policy[" + c.Name + "]"}
	if c.Name == "" {
		return p, registry.Errorf("name", "required")
	}
	if len(c.Permissions) == 0 {
		return p, registry.Errorf("permissions", "required: at least one (any = true for every request)")
	}
	if len(c.Principals) == 0 {
		return p, registry.Errorf("principals", "required: at least one (any = true for everyone)")
	}
	for i := range c.Permissions {
		r, err := compilePermission(&c.Permissions[i], 0)
		if err != nil {
			return p, prefixed(fmt.Sprintf("permissions[%d]", i), err)
		}
		p.permissions = append(p.permissions, r)
	}
	for i := range c.Principals {
		r, err := compilePrincipal(&c.Principals[i], 0)
		if err != nil {
			return p, prefixed(fmt.Sprintf("principals[%d]", i), err)
		}
		p.principals = append(p.principals, r)
	}
	return p, nil
}

// one checks that exactly one of a rule's fields is set.
func one(set []bool, names string) error {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("set exactly one of %s", names)
	}
	return nil
}

const permissionFields = "any, header, url_path, methods, destination_ip, destination_port, requested_server_name, and_rules, or_rules, not_rule"

func compilePermission(c *Permission, depth int) (rule, error) {
	if depth > maxDepth {
		return rule{}, fmt.Errorf("rules nested deeper than %d", maxDepth)
	}
	if err := one([]bool{c.Any, c.Header != nil, c.URLPath != nil, c.Methods != nil, c.DestinationIP != nil, c.DestinationPort != 0,
		c.RequestedServerName != nil, c.AndRules != nil, c.OrRules != nil, c.NotRule != nil}, permissionFields); err != nil {
		return rule{}, err
	}
	var r rule
	var err error
	switch {
	case c.Any:
		r.kind = ruleAny
	case c.Header != nil:
		r, err = compileHeader(c.Header)
		if err != nil {
			return r, prefixed("header", err)
		}
	case c.URLPath != nil:
		r.kind = rulePath
		if r.str, err = c.URLPath.Compile(); err != nil {
			return r, registry.Errorf("url_path", "%v", err)
		}
	case c.Methods != nil:
		r.kind = ruleMethods
		if len(c.Methods) == 0 {
			return r, registry.Errorf("methods", "empty: name at least one method")
		}
		for _, m := range c.Methods {
			if m == "" || strings.ContainsAny(m, " \t\r\n") {
				return r, registry.Errorf("methods", "invalid method %q", m)
			}
		}
		r.methods = c.Methods
	case c.DestinationIP != nil:
		r.kind = ruleDestinationIP
		if r.ips, err = rbacmatch.ParseIPs(c.DestinationIP); err != nil || len(r.ips) == 0 {
			return r, registry.Errorf("destination_ip", "%v", orEmpty(err))
		}
	case c.DestinationPort != 0:
		r.kind = ruleDestinationPort
		if r.ports, err = rbacmatch.ParsePorts([]int{c.DestinationPort}); err != nil {
			return r, registry.Errorf("destination_port", "%v", err)
		}
	case c.RequestedServerName != nil:
		r.kind = ruleServerName
		if r.str, err = c.RequestedServerName.Compile(); err != nil {
			return r, registry.Errorf("requested_server_name", "%v", err)
		}
	case c.AndRules != nil || c.OrRules != nil:
		key, list := "and_rules", c.AndRules
		r.kind = ruleAnd
		if c.OrRules != nil {
			key, list, r.kind = "or_rules", c.OrRules, ruleOr
		}
		if len(list) == 0 {
			return r, registry.Errorf(key, "empty")
		}
		for i := range list {
			sub, err := compilePermission(&list[i], depth+1)
			if err != nil {
				return r, prefixed(fmt.Sprintf("%s[%d]", key, i), err)
			}
			r.sub = append(r.sub, sub)
		}
	case c.NotRule != nil:
		sub, err := compilePermission(c.NotRule, depth+1)
		if err != nil {
			return r, prefixed("not_rule", err)
		}
		r.kind, r.sub = ruleNot, []rule{sub}
	}
	return r, nil
}

const principalFields = "any, direct_remote_ip, remote_ip, source_ip, header, authenticated, and_ids, or_ids, not_id"

func compilePrincipal(c *Principal, depth int) (rule, error) {
	if depth > maxDepth {
		return rule{}, fmt.Errorf("principals nested deeper than %d", maxDepth)
	}
	if err := one([]bool{c.Any, c.DirectRemoteIP != nil, c.RemoteIP != nil, c.SourceIP != nil, c.Header != nil,
		c.Authenticated != nil, c.AndIDs != nil, c.OrIDs != nil, c.NotID != nil}, principalFields); err != nil {
		return rule{}, err
	}
	var r rule
	var err error
	ips := func(kind byte, key string, list []string) error {
		r.kind = kind
		if r.ips, err = rbacmatch.ParseIPs(list); err != nil || len(r.ips) == 0 {
			return registry.Errorf(key, "%v", orEmpty(err))
		}
		return nil
	}
	switch {
	case c.Any:
		r.kind = ruleAny
	case c.DirectRemoteIP != nil:
		err = ips(ruleDirectRemoteIP, "direct_remote_ip", c.DirectRemoteIP)
	case c.RemoteIP != nil:
		err = ips(ruleRemoteIP, "remote_ip", c.RemoteIP)
	case c.SourceIP != nil:
		err = ips(ruleSourceIP, "source_ip", c.SourceIP)
	case c.Header != nil:
		if r, err = compileHeader(c.Header); err != nil {
			err = prefixed("header", err)
		}
	case c.Authenticated != nil:
		r.kind = ruleAuthenticated
		if pn := c.Authenticated.PrincipalName; pn != nil {
			r.hasStr = true
			if r.str, err = pn.Compile(); err != nil {
				err = registry.Errorf("authenticated.principal_name", "%v", err)
			}
		}
	case c.AndIDs != nil || c.OrIDs != nil:
		key, list := "and_ids", c.AndIDs
		r.kind = ruleAnd
		if c.OrIDs != nil {
			key, list, r.kind = "or_ids", c.OrIDs, ruleOr
		}
		if len(list) == 0 {
			return r, registry.Errorf(key, "empty")
		}
		for i := range list {
			sub, err := compilePrincipal(&list[i], depth+1)
			if err != nil {
				return r, prefixed(fmt.Sprintf("%s[%d]", key, i), err)
			}
			r.sub = append(r.sub, sub)
		}
	case c.NotID != nil:
		sub, err := compilePrincipal(c.NotID, depth+1)
		if err != nil {
			return r, prefixed("not_id", err)
		}
		r.kind, r.sub = ruleNot, []rule{sub}
	}
	return r, err
}

func orEmpty(err error) error {
	if err == nil {
		return errors.New("empty: name at least one address or CIDR")
	}
	return err
}

// pseudo maps the pseudo-header names a header matcher may use onto the
// request head.
var pseudo = map[string]byte{":method": headMethod, ":path": headPath, ":authority": headAuthority, "host": headAuthority, ":scheme": headScheme}

func compileHeader(c *HeaderMatcher) (rule, error) {
	r := rule{kind: ruleHeader, invert: c.InvertMatch}
	name := strings.ToLower(c.Name)
	if name == "" || strings.ContainsAny(name, " \t\r\n:") && pseudo[name] == 0 {
		return r, registry.Errorf("name", "invalid header name %q", c.Name)
	}
	r.header, r.head = name, pseudo[name]
	sm := StringMatcher{Exact: c.Exact, Prefix: c.Prefix, Suffix: c.Suffix, Contains: c.Contains, Regex: c.Regex, IgnoreCase: c.IgnoreCase}
	if c.Present {
		if sm != (StringMatcher{IgnoreCase: c.IgnoreCase}) {
			return r, registry.Errorf("present", "set exactly one of exact, prefix, suffix, contains, regex and present")
		}
		r.present = true
		return r, nil
	}
	var err error
	if r.str, err = sm.Compile(); err != nil {
		return r, fmt.Errorf("%v (or present = true)", err)
	}
	return r, nil
}
