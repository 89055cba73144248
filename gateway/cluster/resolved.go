package cluster

import (
	"slices"
	"sync"
)

// The hosts of DNS clusters (strict_dns, logical_dns) are resolved once, by
// the supervisor, and pushed to every worker process: in the Hello for the
// set known when the worker starts, in a control message for each later
// change. A worker process serves one config generation, so the sets are
// kept per process, by cluster name: managers built later start from them,
// live managers are updated in place.

// resolved is the process's DNS host sets and its live managers.
var resolved struct {
	mu       sync.Mutex
	hosts    map[string][]string // by cluster name; guarded by mu
	managers map[*Manager]struct{}
}

// SetResolvedHosts records hosts ("ip:port") as the current addresses of
// the DNS cluster named cluster and swaps them into that cluster of every
// live Manager of the process. It is safe for concurrent use; it returns
// the first error of a manager that could not take the set (that
// manager's cluster keeps its previous hosts).
func SetResolvedHosts(cluster string, hosts []string) error {
	resolved.mu.Lock()
	defer resolved.mu.Unlock()
	if resolved.hosts == nil {
		resolved.hosts = map[string][]string{}
	}
	resolved.hosts[cluster] = slices.Clone(hosts)
	var first error
	for m := range resolved.managers {
		c := m.byName[cluster]
		if c == nil || !IsDNS(c.Cfg) {
			continue
		}
		if err := c.SetHosts(hosts); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// resolvedHosts returns the recorded host set of the DNS cluster named
// cluster, nil before the first.
func resolvedHosts(cluster string) []string {
	resolved.mu.Lock()
	defer resolved.mu.Unlock()
	return slices.Clone(resolved.hosts[cluster])
}

// register makes m receive later SetResolvedHosts, and gives its DNS
// clusters any set recorded since m read them.
func register(m *Manager) {
	resolved.mu.Lock()
	defer resolved.mu.Unlock()
	if resolved.managers == nil {
		resolved.managers = map[*Manager]struct{}{}
	}
	resolved.managers[m] = struct{}{}
	for name, hosts := range resolved.hosts {
		c := m.byName[name]
		if c == nil || !IsDNS(c.Cfg) {
			continue
		}
		cur := make([]string, 0, len(hosts))
		for _, h := range c.Hosts() {
			cur = append(cur, h.Address)
		}
		if !slices.Equal(cur, hosts) {
			_ = c.SetHosts(hosts) // keeps the previous set on error
		}
	}
}

// unregister undoes register.
func unregister(m *Manager) {
	resolved.mu.Lock()
	defer resolved.mu.Unlock()
	delete(resolved.managers, m)
}
