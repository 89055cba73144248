package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Upper bounds of server settings.
const (
	MaxWorkers    = 1024
	MaxGoMaxProcs = 1024
	// maxUnixPath is the longest path a unix socket address can hold.
	maxUnixPath = 107
)

// validator collects validation errors.
type validator struct {
	c    *Config
	errs []*Error
}

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, v.c.errorf(key, fmt.Sprintf(format, args...)))
}

// validate checks c after defaults are applied and returns every problem,
// each an *Error, ordered by line.
func (c *Config) validate() error {
	v := &validator{c: c}
	v.server()
	v.admin()
	v.statsd()
	v.plugins()
	v.log()
	v.listeners()
	v.clusters()
	v.routeConfigs()
	if len(v.errs) == 0 {
		return nil
	}
	sort.SliceStable(v.errs, func(i, j int) bool {
		if v.errs[i].Line != v.errs[j].Line {
			return v.errs[i].Line < v.errs[j].Line
		}
		return v.errs[i].Key < v.errs[j].Key
	})
	if len(v.errs) == 1 {
		return v.errs[0]
	}
	if len(v.errs) > maxErrors {
		v.errs = v.errs[:maxErrors]
	}
	errs := make([]error, len(v.errs))
	for i, e := range v.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (v *validator) server() {
	s := &v.c.Server
	if s.Workers < 0 || s.Workers > MaxWorkers {
		v.errorf("server.workers", "must be between 0 and %d, got %d", MaxWorkers, s.Workers)
	}
	if s.GoMaxProcs < 0 || s.GoMaxProcs > MaxGoMaxProcs {
		v.errorf("server.gomaxprocs", "must be between 0 and %d, got %d", MaxGoMaxProcs, s.GoMaxProcs)
	}
	v.duration("server.drain_timeout", s.DrainTimeout.Duration)
	v.duration("server.ticket_key_rotation", s.TicketKeyRotation.Duration)
	// A negative drain_timeout is its own error (and the default jitter
	// derives from it): checking the jitter against it would only add a
	// second, misplaced one.
	if s.DrainTimeout.Duration >= 0 && (s.DrainJitter.Duration < 0 || s.DrainJitter.Duration > s.DrainTimeout.Duration) {
		v.errorf("server.drain_jitter", "must be within 0 and drain_timeout (%v), got %v", s.DrainTimeout.Duration, s.DrainJitter.Duration)
	}
	if s.DrainStrategy != "gradual" && s.DrainStrategy != "immediate" {
		v.errorf("server.drain_strategy", "must be gradual or immediate, got %q", s.DrainStrategy)
	}
	if len(s.ControlSocket) > maxUnixPath {
		v.errorf("server.control_socket", "path longer than %d bytes", maxUnixPath)
	}
}

func (v *validator) admin() {
	a := &v.c.Admin
	if a.Address == "" {
		return
	}
	host, _, err := splitAddress(a.Address)
	if err != nil {
		v.errorf("admin.address", "%v", err)
		return
	}
	if !a.AllowNonLoopback && !isLoopback(host) {
		v.errorf("admin.address", "%q is not a loopback address (set allow_non_loopback to expose the admin API)", a.Address)
	}
	v.adminCollision(host)
}

// adminCollision reports a listener bound to the admin API's port on an
// address that overlaps it: the admin API could not bind, and sluice would
// run without it (its failure to listen is only logged).
func (v *validator) adminCollision(host string) {
	_, port, err := splitAddress(v.c.Admin.Address)
	if err != nil || port == 0 {
		return
	}
	for i := range v.c.Listeners {
		l := &v.c.Listeners[i]
		lh, lp, err := splitAddress(l.Address)
		if err != nil || lp != port || l.UDP() || !l.Bound() {
			continue
		}
		if hostsOverlap(canonicalHost(host), canonicalHost(lh)) {
			v.errorf("admin.address", "%q overlaps %s (%q), whose socket would keep the admin API from starting: give the admin API its own port",
				v.c.Admin.Address, indexKey("listener", i)+" "+strconv.Quote(l.Name), l.Address)
			return
		}
	}
}

func (v *validator) log() {
	switch v.c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorf("log.level", "must be debug, info, warn or error, got %q", v.c.Log.Level)
	}
	switch v.c.Log.Format {
	case "json", "console":
	default:
		v.errorf("log.format", "must be json or console, got %q", v.c.Log.Format)
	}
}

func (v *validator) listeners() {
	names := map[string]bool{}
	addrs := map[string]string{}
	for i := range v.c.Listeners {
		l := &v.c.Listeners[i]
		p := indexKey("listener", i)
		v.name(p, l.Name, names)
		if l.Address == "" {
			v.errorf(p+".address", "missing address")
		} else if host, port, err := splitAddress(l.Address); err != nil {
			v.errorf(p+".address", "%v", err)
		} else if port != 0 {
			key := net.JoinHostPort(canonicalHost(host), strconv.Itoa(port))
			if l.UDP() {
				key += "/udp"
			}
			if prev, dup := addrs[key]; dup {
				v.errorf(p+".address", "address %q already used by %s", l.Address, prev)
			} else {
				addrs[key] = p
			}
		}
		if l.Backlog < 0 {
			v.errorf(p+".backlog", "must be >= 0")
		}
		if l.PerConnectionBufferLimitBytes < 0 {
			v.errorf(p+".per_connection_buffer_limit_bytes", "must be >= 0")
		}
		v.duration(p+".listener_filters_timeout", l.ListenerFiltersTimeout.Duration)
		v.virtualListener(p, l)
		if len(l.FilterChains) == 0 {
			v.errorf(p, "listener %q has no filter_chain", l.Name)
		}
		chains := map[string]bool{}
		for j := range l.FilterChains {
			fc := &l.FilterChains[j]
			cp := indexKey(p+".filter_chain", j)
			if fc.Name != "" {
				if chains[fc.Name] {
					v.errorf(cp+".name", "duplicate filter_chain name %q", fc.Name)
				}
				chains[fc.Name] = true
			}
			if len(fc.Filters) == 0 {
				v.errorf(cp, "filter_chain has no filter")
			}
			v.chain(fc.Filters)
		}
		v.chainMatches(p, l)
		v.chainInspectors(p, l)
		v.udpListener(p, l)
	}
}

// chain checks that exactly the last filter of a network or HTTP chain is
// terminal, in fs and in the chains nested in their configs.
func (v *validator) chain(fs []Filter) {
	for i := range fs {
		f := &fs[i]
		info, ok := registry.Lookup(f.Name)
		if !ok {
			continue
		}
		last := i == len(fs)-1
		switch {
		case info.Terminal && !last:
			v.errorf(f.Path+".name", "terminal filter %q must be the last of its chain", f.Name)
		case !info.Terminal && last && info.Kind != registry.Listener:
			v.errorf(f.Path+".name", "the last filter of a chain must be terminal, %q is not", f.Name)
		}
		if n, ok := f.Decoded.(NestedFilters); ok {
			_, _, nested := n.Nested()
			v.chain(nested)
		}
	}
}

func (v *validator) clusters() {
	names := map[string]bool{}
	for i := range v.c.Clusters {
		cl := &v.c.Clusters[i]
		p := indexKey("cluster", i)
		v.name(p, cl.Name, names)
		switch cl.Type {
		case "static":
		case "strict_dns", "logical_dns":
			v.dnsCluster(p, cl)
		case "original_dst":
			v.originalDstCluster(p, cl)
		default:
			v.errorf(p+".type", "unsupported cluster type %q (static, strict_dns, logical_dns, original_dst)", cl.Type)
		}
		if cl.Type != "original_dst" && (cl.CleanupInterval.Duration != 0 || cl.UseHTTPHeader) {
			v.errorf(p+".type", "cleanup_interval and use_http_header are for original_dst clusters")
		}
		switch cl.LBPolicy {
		case "round_robin", "least_request", "random", "ring_hash", "maglev":
			if cl.Type == "original_dst" {
				v.errorf(p+".lb_policy", "an original_dst cluster's lb_policy is cluster_provided")
			}
		case "cluster_provided":
			if cl.Type != "original_dst" {
				v.errorf(p+".lb_policy", "cluster_provided is the policy of original_dst clusters")
			}
		default:
			v.errorf(p+".lb_policy", "unsupported lb_policy %q (round_robin, least_request, random, ring_hash, maglev)", cl.LBPolicy)
		}
		if n := len(cl.EndpointWeights); n > 0 {
			if n != len(cl.Endpoints) {
				v.errorf(p+".endpoint_weights", "has %d weights for %d endpoints", n, len(cl.Endpoints))
			}
			for _, w := range cl.EndpointWeights {
				if w < 1 || w > 128 {
					v.errorf(p+".endpoint_weights", "weight %d not in 1..128", w)
					break
				}
			}
		}
		if len(cl.Endpoints) == 0 && cl.Type != "original_dst" {
			v.errorf(p+".endpoints", "cluster %q has no endpoints", cl.Name)
		}
		for j, ep := range cl.Endpoints {
			ek := indexKey(p+".endpoints", j)
			host, port, err := splitAddress(ep)
			switch {
			case err != nil:
				v.errorf(ek, "%v", err)
			case host == "":
				v.errorf(ek, "endpoint %q has no host", ep)
			case port == 0:
				v.errorf(ek, "endpoint %q has port 0", ep)
			}
		}
		v.duration(p+".connect_timeout", cl.ConnectTimeout.Duration)
		v.duration(p+".idle_timeout", cl.IdleTimeout.Duration)
		v.duration(p+".max_connection_duration", cl.MaxConnectionDuration.Duration)
		if cl.MaxIdleConnections < 0 {
			v.errorf(p+".max_idle_connections", "must be >= 0")
		}
		if cl.PerConnectionBufferLimitBytes < 0 {
			v.errorf(p+".per_connection_buffer_limit_bytes", "must be >= 0")
		}
		switch cl.Protocol {
		case "http1", "http2", "auto":
		default:
			v.errorf(p+".protocol", "must be http1, http2 or auto, not %q", cl.Protocol)
		}
		if cl.MaxRequestsPerConnection < 0 {
			v.errorf(p+".max_requests_per_connection", "must be >= 0")
		}
		v.clusterResilience(p, cl)
	}
}

// name checks that a listener, cluster or route_config at p has a name
// not seen before.
func (v *validator) name(p, name string, seen map[string]bool) {
	switch {
	case name == "":
		v.errorf(p+".name", "missing name")
	case seen[name]:
		v.errorf(p+".name", "duplicate name %q", name)
	}
	seen[name] = true
}

func (v *validator) duration(key string, d time.Duration) {
	if d < 0 {
		v.errorf(key, "must not be negative, got %s", d)
	}
}

// splitAddress parses "host:port" with a numeric port; host may be empty,
// an IP address or a host name.
func splitAddress(s string) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: want host:port", s)
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 || ps == "" || ps[0] == '+' || ps[0] == '-' {
		return "", 0, fmt.Errorf("invalid address %q: port must be a number from 0 to 65535", s)
	}
	if host != "" && !validHost(host) {
		return "", 0, fmt.Errorf("invalid address %q: bad host %q", s, host)
	}
	return host, port, nil
}

// validHost accepts an IP address (with optional zone) or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// canonicalHost normalises an IP literal so that equal addresses compare
// equal.
func canonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(h)
}

// hostsOverlap reports whether sockets bound to the same port on hosts a
// and b (canonical) would conflict: the same host, "localhost" and a
// loopback IP, the IPv4 wildcard and an IPv4 host, or the dual-stack
// wildcard ("" or "::") and any host.
func hostsOverlap(a, b string) bool {
	if a == b || a == "" || b == "" || a == "::" || b == "::" {
		return true
	}
	v4 := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "localhost" || (err == nil && ip.Unmap().Is4())
	}
	if (a == "0.0.0.0" && v4(b)) || (b == "0.0.0.0" && v4(a)) {
		return true
	}
	return (a == "localhost" && isLoopback(b)) || (b == "localhost" && isLoopback(a))
}

// isLoopback reports whether host is "localhost" or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// virtualListener checks bind_to_port and use_original_dst: a listener
// without a socket is tcp, has a fixed port (the hand-over matches on it),
// and hands nothing over itself.
func (v *validator) virtualListener(p string, l *Listener) {
	if l.Bound() {
		return
	}
	if l.UDP() {
		v.errorf(p+".bind_to_port", "a udp listener must bind to its port")
	}
	if l.UseOriginalDst {
		v.errorf(p+".use_original_dst", "a listener with bind_to_port = false accepts nothing to hand over")
	}
	if _, port, err := splitAddress(l.Address); err == nil && port == 0 {
		v.errorf(p+".address", "a listener with bind_to_port = false needs a port: connections are handed to it by their original destination")
	} else if err == nil {
		if _, err := netip.ParseAddrPort(l.Address); err != nil {
			v.errorf(p+".address", "a listener with bind_to_port = false needs an IP address, not %q", l.Address)
		}
	}
}

// originalDstCluster checks an original_dst cluster: its hosts are the
// connections' original destinations, so it lists none and nothing
// watches their health.
func (v *validator) originalDstCluster(p string, cl *Cluster) {
	if len(cl.Endpoints) > 0 {
		v.errorf(p+".endpoints", "an original_dst cluster has no endpoints")
	}
	if len(cl.HealthChecks) > 0 {
		v.errorf(p+".health_check", "an original_dst cluster has no health checks")
	}
	if cl.OutlierDetection != nil {
		v.errorf(p+".outlier_detection", "an original_dst cluster has no outlier detection")
	}
	if cl.CleanupInterval.Duration <= 0 {
		v.errorf(p+".cleanup_interval", "must be positive")
	}
}
