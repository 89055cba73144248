package config

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/internal/headermatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func (v *validator) routeConfigs() {
	names := map[string]bool{}
	for i := range v.c.RouteConfigs {
		rc := &v.c.RouteConfigs[i]
		p := indexKey("route_config", i)
		v.name(p, rc.Name, names)
		v.headerMutations(p, &rc.HeaderMutations)
		domains := map[string]string{}
		star := ""
		for j := range rc.VirtualHosts {
			vh := &rc.VirtualHosts[j]
			vp := indexKey(p+".virtual_host", j)
			if len(vh.Domains) == 0 {
				v.errorf(vp+".domains", "virtual_host has no domains")
			}
			v.headerMutations(vp, &vh.HeaderMutations)
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
	for i := range m.QueryParameters {
		v.queryParameterMatcher(&m.QueryParameters[i], indexKey(p+".match.query_parameters", i))
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
	v.headerMutations(p, &r.HeaderMutations)
	if len(r.Upgrade) > 0 && r.Cluster == "" && len(r.WeightedClusters) == 0 {
		v.errorf(p+".upgrade", "needs a cluster")
	}

	actions := 0
	if r.Cluster != "" {
		actions++
		if v.c.Cluster(r.Cluster) == nil {
			v.errorf(p+".cluster", "unknown cluster %q", r.Cluster)
		}
	}
	if len(r.WeightedClusters) > 0 {
		actions++
		sum := 0
		for i := range r.WeightedClusters {
			wc, k := &r.WeightedClusters[i], indexKey(p+".weighted_clusters", i)
			if v.c.Cluster(wc.Name) == nil {
				v.errorf(k+".name", "unknown cluster %q", wc.Name)
			}
			if wc.Weight < 0 || wc.Weight > MaxRouteClusterWeight {
				v.errorf(k+".weight", "must be in 0..%d, got %d", MaxRouteClusterWeight, wc.Weight)
			} else {
				sum += wc.Weight
			}
			v.headerMutations(k, &wc.HeaderMutations)
		}
		if sum == 0 {
			v.errorf(p+".weighted_clusters", "the weights add up to 0")
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
		if rd.Port < 0 || rd.Port > 65535 {
			v.errorf(p+".redirect.port", "must be in 1..65535 (0 keeps the request's), got %d", rd.Port)
		}
		if rd.PrefixRewrite != "" && m.Prefix == "" {
			v.errorf(p+".redirect.prefix_rewrite", "only allowed with a prefix match")
		}
		if rd.RegexRewrite != nil {
			v.regexRewrite(p+".redirect.regex_rewrite", rd.RegexRewrite)
		}
		n := 0
		for _, set := range []bool{rd.Path != "", rd.PrefixRewrite != "", rd.RegexRewrite != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			v.errorf(p+".redirect", "set at most one of path, prefix_rewrite and regex_rewrite")
		}
	}
	if actions != 1 {
		v.errorf(p, "set exactly one of cluster, weighted_clusters, direct_response and redirect")
	}
	if r.PrefixRewrite != "" && m.Prefix == "" {
		v.errorf(p+".prefix_rewrite", "only allowed with a prefix match")
	}
	forwards := r.Cluster != "" || len(r.WeightedClusters) > 0
	if r.RegexRewrite != nil {
		v.regexRewrite(p+".regex_rewrite", r.RegexRewrite)
		switch {
		case r.PrefixRewrite != "":
			v.errorf(p+".regex_rewrite", "set only one of prefix_rewrite and regex_rewrite")
		case !forwards:
			v.errorf(p+".regex_rewrite", "needs a cluster (a redirect has its own regex_rewrite)")
		}
	}
	if r.AutoHostRewrite {
		switch {
		case r.HostRewrite != "":
			v.errorf(p+".auto_host_rewrite", "set only one of host_rewrite and auto_host_rewrite")
		case !forwards:
			v.errorf(p+".auto_host_rewrite", "needs a cluster")
		}
	}
	if r.Timeout != nil {
		v.duration(p+".timeout", r.Timeout.Duration)
	}
	if r.RetryPolicy != nil {
		v.retryPolicy(p+".retry_policy", r.RetryPolicy)
	}
	if msd := r.MaxStreamDuration; msd != nil {
		if msd.GrpcTimeoutHeaderMax != nil {
			v.duration(p+".max_stream_duration.grpc_timeout_header_max", msd.GrpcTimeoutHeaderMax.Duration)
		}
		v.duration(p+".max_stream_duration.grpc_timeout_header_offset", msd.GrpcTimeoutHeaderOffset.Duration)
		if !forwards {
			v.errorf(p+".max_stream_duration", "needs a cluster")
		}
	}
	for i := range r.RequestMirrorPolicies {
		v.mirrorPolicy(indexKey(p+".request_mirror_policies", i), &r.RequestMirrorPolicies[i])
	}
	if d := r.Decorator; d != nil {
		if d.Operation == "" || strings.ContainsAny(d.Operation, "\r\n\x00") {
			v.errorf(p+".decorator.operation", "required, a header value (no CR, LF or NUL)")
		}
	}
	for i, name := range r.DisabledFilters {
		if info, ok := registry.Lookup(name); !ok || info.Kind != registry.HTTP {
			v.errorf(indexKey(p+".disabled_filters", i), "%s", unknownFilter(name, registry.HTTP, info))
		}
	}
}

// AppendActions are the values of a header's append_action.
var AppendActions = []string{"append_if_exists_or_add", "add_if_absent", "overwrite_if_exists_or_add", "overwrite_if_exists"}

// headerMutations validates the header mutations of the table at path p.
// As in Envoy, pseudo-headers and host cannot be added or removed: the
// authority has host_rewrite.
func (v *validator) headerMutations(p string, m *HeaderMutations) {
	name := func(k, n string) {
		switch {
		case !headermatch.IsLowerToken(strings.ToLower(n)):
			v.errorf(k, "header name %q must be a non-empty token", n)
		case strings.EqualFold(n, "host"):
			v.errorf(k, "header %q cannot be modified (use host_rewrite)", n)
		}
	}
	adds := func(key string, opts []HeaderValueOption) {
		for i := range opts {
			o, k := &opts[i], indexKey(p+"."+key, i)
			name(k+".key", o.Key)
			if !http1.ValidFieldValue(o.Value) {
				v.errorf(k+".value", "not a valid field value (control characters, or leading or trailing whitespace)")
			} else if _, err := accesslog.CompileValue(o.Value); err != nil {
				v.errorf(k+".value", "%v", err)
			}
			if o.AppendAction != "" && !slices.Contains(AppendActions, o.AppendAction) {
				v.errorf(k+".append_action", "must be one of %s, got %q", strings.Join(AppendActions, ", "), o.AppendAction)
			}
		}
	}
	removes := func(key string, names []string) {
		for i, n := range names {
			name(indexKey(p+"."+key, i), n)
		}
	}
	adds("request_headers_to_add", m.RequestHeadersToAdd)
	removes("request_headers_to_remove", m.RequestHeadersToRemove)
	adds("response_headers_to_add", m.ResponseHeadersToAdd)
	removes("response_headers_to_remove", m.ResponseHeadersToRemove)
}

// headerMatcher validates one header matcher at path p.
func (v *validator) headerMatcher(h *HeaderMatcher, p string) {
	if _, err := h.Compile(); err != nil {
		var fe *registry.FieldError
		errors.As(registry.Within(p, err), &fe)
		v.errorf(fe.Key, "%v", fe.Err)
	}
}

// queryParameterMatcher validates one query parameter matcher at path p.
func (v *validator) queryParameterMatcher(q *QueryParameterMatcher, p string) {
	if q.Name == "" {
		v.errorf(p+".name", "required")
	}
	n := 0
	for _, s := range []string{q.Exact, q.Prefix, q.Suffix, q.Contains, q.Regex} {
		if s != "" {
			n++
		}
	}
	if q.Present != nil {
		n++
	}
	if n > 1 {
		v.errorf(p, "set at most one of exact, prefix, suffix, contains, regex and present")
	}
	if q.Regex != "" {
		if _, err := regexp.Compile(q.Regex); err != nil {
			v.errorf(p+".regex", "invalid regex: %v", err)
		} else if q.IgnoreCase {
			v.errorf(p+".ignore_case", "has no effect on regex (use (?i) in the regex)")
		}
	}
}

// regexRewrite validates a regex_rewrite table at path p.
func (v *validator) regexRewrite(p string, rr *RegexRewrite) {
	if _, _, err := rr.Compile(); err != nil {
		key, msg, _ := strings.Cut(err.Error(), ": ")
		v.errorf(p+"."+key, "%s", msg)
	}
}
