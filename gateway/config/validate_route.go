package config

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func (v *validator) routeConfigs() {
	names := map[string]bool{}
	for i := range v.c.RouteConfigs {
		rc := &v.c.RouteConfigs[i]
		p := indexKey("route_config", i)
		v.name(p, rc.Name, names)
		domains := map[string]string{}
		star := ""
		for j := range rc.VirtualHosts {
			vh := &rc.VirtualHosts[j]
			vp := indexKey(p+".virtual_host", j)
			if len(vh.Domains) == 0 {
				v.errorf(vp+".domains", "virtual_host has no domains")
			}
			for k, d := range vh.Domains {
				dk := indexKey(vp+".domains", k)
				if msg := domainProblem(d); msg != "" {
					v.errorf(dk, "%s", msg)
					continue
				}
				if d == "*" {
					if star != "" {
						v.errorf(dk, "domain \"*\" already used by %s", star)
					} else {
						star = dk
					}
					continue
				}
				ld := strings.ToLower(d)
				if prev, dup := domains[ld]; dup {
					v.errorf(dk, "duplicate domain %q (also %s)", d, prev)
				} else {
					domains[ld] = dk
				}
			}
			for k := range vh.Routes {
				v.route(&vh.Routes[k], indexKey(vp+".route", k))
			}
		}
	}
}

// domainProblem explains what is wrong with a virtual host domain, or
// returns "".
func domainProblem(d string) string {
	switch {
	case d == "":
		return "empty domain"
	case d == "*":
		return ""
	case strings.ContainsAny(d, " \t/"):
		return "invalid domain " + strconv.Quote(d)
	}
	rest := d
	if s, ok := strings.CutPrefix(d, "*."); ok {
		rest = s
	} else if s, ok := strings.CutSuffix(d, ".*"); ok {
		rest = s
	}
	if rest == "" || strings.Contains(rest, "*") {
		return "invalid wildcard in domain " + strconv.Quote(d) + ": use \"*\", a leading \"*.\" or a trailing \".*\""
	}
	return ""
}

// route validates one route at path p.
func (v *validator) route(r *Route, p string) {
	m := &r.Match
	kinds := 0
	for _, s := range []string{m.Path, m.Prefix, m.Regex} {
		if s != "" {
			kinds++
		}
	}
	if kinds != 1 {
		v.errorf(p+".match", "set exactly one of path, prefix and regex")
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		v.errorf(p+".match.path", "must start with \"/\"")
	}
	if m.Prefix != "" && !strings.HasPrefix(m.Prefix, "/") {
		v.errorf(p+".match.prefix", "must start with \"/\"")
	}
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			v.errorf(p+".match.regex", "invalid regex: %v", err)
		}
	}
	for i := range m.Headers {
		v.headerMatcher(&m.Headers[i], indexKey(p+".match.headers", i))
	}
	for i, u := range r.Upgrade {
		if u != "websocket" && u != "CONNECT" {
			v.errorf(indexKey(p+".upgrade", i), "must be \"websocket\" or \"CONNECT\", got %q", u)
		}
	}
	switch strings.ToLower(r.Priority) {
	case "", "default", "high":
	default:
		v.errorf(p+".priority", "must be \"default\" or \"high\", got %q", r.Priority)
	}
	if len(r.Upgrade) > 0 && r.Cluster == "" {
		v.errorf(p+".upgrade", "needs a cluster")
	}

	actions := 0
	if r.Cluster != "" {
		actions++
		if v.c.Cluster(r.Cluster) == nil {
			v.errorf(p+".cluster", "unknown cluster %q", r.Cluster)
		}
	}
	if r.DirectResponse != nil {
		actions++
		if s := r.DirectResponse.Status; s < 200 || s > 599 {
			v.errorf(p+".direct_response.status", "must be between 200 and 599, got %d", s)
		}
	}
	if rd := r.Redirect; rd != nil {
		actions++
		switch rd.Status {
		case 301, 302, 303, 307, 308:
		default:
			v.errorf(p+".redirect.status", "must be 301, 302, 303, 307 or 308, got %d", rd.Status)
		}
		if rd.HTTPSRedirect && rd.Scheme != "" && rd.Scheme != "https" {
			v.errorf(p+".redirect.scheme", "conflicts with https_redirect")
		}
		if rd.Path != "" && !strings.HasPrefix(rd.Path, "/") {
			v.errorf(p+".redirect.path", "must start with \"/\"")
		}
	}
	if actions != 1 {
		v.errorf(p, "set exactly one of cluster, direct_response and redirect")
	}
	if r.PrefixRewrite != "" && m.Prefix == "" {
		v.errorf(p+".prefix_rewrite", "only allowed with a prefix match")
	}
	if r.Timeout != nil {
		v.duration(p+".timeout", r.Timeout.Duration)
	}
	if r.RetryPolicy != nil {
		v.retryPolicy(p+".retry_policy", r.RetryPolicy)
	}
	for i := range r.RequestMirrorPolicies {
		v.mirrorPolicy(indexKey(p+".request_mirror_policies", i), &r.RequestMirrorPolicies[i])
	}
	for i, name := range r.DisabledFilters {
		if info, ok := registry.Lookup(name); !ok || info.Kind != registry.HTTP {
			v.errorf(indexKey(p+".disabled_filters", i), "%s", unknownFilter(name, registry.HTTP, info))
		}
	}
}

// headerMatcher validates one header matcher at path p.
func (v *validator) headerMatcher(h *HeaderMatcher, p string) {
	if !isLowerToken(h.Name) {
		v.errorf(p+".name", "header name %q must be a non-empty lowercase token", h.Name)
	}
	n := 0
	for _, s := range []string{h.Exact, h.Prefix, h.Regex} {
		if s != "" {
			n++
		}
	}
	if h.Present != nil {
		n++
	}
	if n > 1 {
		v.errorf(p, "set at most one of exact, prefix, regex and present")
	}
	if h.Regex != "" {
		if _, err := regexp.Compile(h.Regex); err != nil {
			v.errorf(p+".regex", "invalid regex: %v", err)
		}
	}
}

// isLowerToken reports whether s is a non-empty RFC 9110 token without
// upper-case letters.
func isLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
