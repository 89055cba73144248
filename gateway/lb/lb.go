// Package lb holds load-balancing policies. A policy picks an index into a
// cluster's host list; it knows nothing of hosts beyond what Hosts exposes,
// so that clusters can use it without an import cycle.
package lb

import "sync/atomic"

// Hosts is the view of a host list a policy picks from. Implementations must
// be safe for concurrent use.
type Hosts interface {
	// Len is the number of hosts.
	Len() int
	// Healthy reports whether host i may receive traffic.
	Healthy(i int) bool
}

// Policy picks a host. Pick returns -1 when no host is available. Policies
// are safe for concurrent use and lock-free.
type Policy interface {
	Pick(h Hosts) int
}

// RoundRobin cycles through the healthy hosts.
type RoundRobin struct {
	next atomic.Uint64
}

// Pick returns the next healthy host in turn.
func (r *RoundRobin) Pick(h Hosts) int {
	n := h.Len()
	if n == 0 {
		return -1
	}
	start := r.next.Add(1) - 1
	for k := 0; k < n; k++ {
		i := int((start + uint64(k)) % uint64(n))
		if h.Healthy(i) {
			return i
		}
	}
	return -1
}

// New returns the policy named name, or nil if the name is unknown.
func New(name string) Policy {
	switch name {
	case "round_robin", "":
		return &RoundRobin{}
	}
	return nil
}
