package lb

import (
	"errors"
	"net/netip"
	"time"
)

// ErrUnknownPolicy is returned by New for an lb_policy it does not know.
var ErrUnknownPolicy = errors.New("lb: unknown lb_policy")

// Hosts is the view of a cluster's host list that a policy picks from.
//
// Len, Address and Weight describe membership: they must not change while
// the value is in use by a policy (give the policy a new Hosts with Update
// instead). Healthy, HealthyLen, Active and Since describe runtime state:
// they may change at any time, are called concurrently from many goroutines
// during Pick, and must be cheap, lock-free reads (atomics).
type Hosts interface {
	// Len is the number of hosts.
	Len() int
	// Address is host i's stable identity (host:port); ring hash and
	// maglev hash it.
	Address(i int) string
	// Weight is host i's load-balancing weight; 0 is treated as 1.
	Weight(i int) uint32
	// Healthy reports whether host i may receive traffic.
	Healthy(i int) bool
	// HealthyLen is the number of healthy hosts, for the panic threshold.
	// It may disagree briefly with Healthy while health changes.
	HealthyLen() int
	// Active is the number of requests in flight to host i.
	Active(i int) int64
	// Since is when host i joined the cluster or last became healthy; the
	// zero time means "long ago" and keeps the host out of slow start
	// (use it for the hosts a cluster starts with, as Envoy does).
	Since(i int) time.Time
}

// Request carries what a policy may use of a request. The router fills it
// from the route's hash policy.
type Request struct {
	// Hash is the request's hash; it is meaningful when HasHash is true.
	Hash    uint64
	HasHash bool
	// Attempt, when above 0, is a retry's host selection attempt under
	// the previous_hosts predicate: a hash-based policy (ring_hash,
	// maglev) then picks the Attempt-th distinct eligible host after the
	// one Hash maps to, as Envoy's do for such attempts, instead of the
	// host already tried. Other policies ignore it.
	Attempt uint32
	// OriginalDst is the downstream connection's original destination
	// (zero when none was restored): an original_dst cluster's host.
	OriginalDst netip.AddrPort
	// Header, when set, reads the request's headers (an original_dst
	// cluster with use_http_header reads x-envoy-original-dst-host).
	Header interface{ Get(name string) []byte }
}

// Policy picks a host for each request.
//
// Update and Pick are safe for concurrent use. Pick is lock-free, allocates
// nothing and never blocks; it may run concurrently with Update and then
// picks from either the old or the new host list. Update allocates and takes
// time proportional to the structure it rebuilds (up to the ring or table
// size); call it when membership or weights change, not on health changes.
type Policy interface {
	// Update replaces the host list. The policy keeps h until the next
	// Update.
	Update(h Hosts)
	// Pick returns the index of the chosen host in the Hosts of the last
	// Update, or -1 when there is none (no host, or no healthy host with
	// the panic threshold at 0). r may be nil.
	Pick(r *Request) int
}

// New returns the policy cfg describes, with Envoy's defaults for what cfg
// leaves unset. It has no host until its first Update.
func New(cfg Config) (Policy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := newSettings(&cfg)
	switch cfg.Policy {
	case RoundRobinPolicy, "":
		return &roundRobin{common: common{settings: c}}, nil
	case LeastRequestPolicy:
		return newLeastRequest(c, cfg.LeastRequest), nil
	case RandomPolicy:
		return &random{common: common{settings: c}}, nil
	case RingHashPolicy:
		return newRingHash(c, cfg.RingHash), nil
	case MaglevPolicy:
		return newMaglev(c, cfg.Maglev), nil
	}
	// validate rejects unknown names; keep the compiler and readers sure.
	return nil, ErrUnknownPolicy
}
