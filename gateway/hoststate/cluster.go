package hoststate

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// BreakerKind names one of a cluster's circuit breakers (Envoy's
// CircuitBreakers.Thresholds); each priority has one of each kind.
type BreakerKind uint8

// Priority is a routing priority (Envoy's RoutingPriority). Each has its
// own set of breakers.
type Priority uint8

// Priorities.
const (
	// PriorityDefault is the priority of routes that set none.
	PriorityDefault Priority = iota
	// PriorityHigh is the priority of routes with priority = "high".
	PriorityHigh
	numPriorities
)

// Breaker kinds.
const (
	// Connections counts open upstream connections (max_connections).
	Connections BreakerKind = iota
	// Pending counts requests waiting for a connection (max_pending_requests).
	Pending
	// Requests counts requests in flight (max_requests).
	Requests
	// Retries counts retries in flight (max_retries).
	Retries
	numKinds
	numBreakers = int(numKinds) * int(numPriorities)
)

// Cluster payload words (after the breaker counters, one per kind).
const (
	cEjected = numBreakers + iota // hosts ejected by outlier detection
	cTraffic                      // nonzero once the cluster had a request
)

// Cluster is one cluster's shared record, seen through one worker's shadow
// counters. Methods are lock-free and allocation-free, safe from any
// goroutine of any process.
type Cluster struct {
	w      *[payloadWords]uint64
	shadow []uint64 // this worker's shadow counters; nil for the supervisor
}

// AddCluster returns the record of cluster name, creating it if it does not
// exist, seen as worker index worker (0 ≤ worker < Workers()), or with no
// shadow when worker < 0 (the supervisor: it may read and eject, and must
// not take breakers).
func (r *Region) AddCluster(name string, worker int) (*Cluster, error) {
	k, hash, err := makeKey(kindCluster, name, "")
	if err != nil {
		return nil, err
	}
	if worker >= r.workers {
		return nil, fmt.Errorf("hoststate: worker index %d out of range 0..%d", worker, r.workers-1)
	}
	r.lock()
	i, _, err := r.add(kindCluster, &k, hash, nil)
	r.unlock()
	if err != nil {
		return nil, err
	}
	return r.cluster(i, worker), nil
}

// Cluster returns the live record of cluster name seen as worker (see
// AddCluster), or nil. It takes no lock.
func (r *Region) Cluster(name string, worker int) *Cluster {
	k, hash, err := makeKey(kindCluster, name, "")
	if err != nil || worker >= r.workers {
		return nil
	}
	i := r.find(&k, hash)
	if i < 0 {
		return nil
	}
	return r.cluster(i, worker)
}

func (r *Region) cluster(i, worker int) *Cluster {
	c := &Cluster{w: (*[payloadWords]uint64)(unsafe.Pointer(&r.table[i*slotWords+payloadWord]))}
	if worker >= 0 {
		c.shadow = r.shadow[(worker*r.slots+i)*shadowWords : (worker*r.slots+i+1)*shadowWords]
	}
	return c
}

func (r *Region) shadowWord(worker, slot, kind int) *uint64 {
	return &r.shadow[(worker*r.slots+slot)*shadowWords+kind]
}

// Breaker returns the default priority's breaker of kind k.
func (c *Cluster) Breaker(k BreakerKind) Breaker { return c.PriorityBreaker(PriorityDefault, k) }

// PriorityBreaker returns priority p's breaker of kind k.
func (c *Cluster) PriorityBreaker(p Priority, k BreakerKind) Breaker {
	i := int(p)*int(numKinds) + int(k)
	b := Breaker{global: &c.w[i]}
	if c.shadow != nil {
		b.shadow = &c.shadow[i]
	}
	return b
}

// MarkTraffic records that the cluster had a request (for health checks'
// no_traffic_interval). It writes the shared line only the first time.
func (c *Cluster) MarkTraffic() {
	if atomic.LoadUint64(&c.w[cTraffic]) == 0 {
		atomic.StoreUint64(&c.w[cTraffic], 1)
	}
}

// HadTraffic reports whether MarkTraffic was ever called for the cluster.
func (c *Cluster) HadTraffic() bool { return atomic.LoadUint64(&c.w[cTraffic]) != 0 }

// Ejected returns the number of hosts outlier detection has ejected.
func (c *Cluster) Ejected() uint64 { return atomic.LoadUint64(&c.w[cEjected]) }

// TryEject takes one unit of the cluster's ejection budget: it succeeds
// when no host is ejected, or when one more ejection keeps the ejected
// share of hosts within maxPercent (Envoy's max_ejection_percent check).
func (c *Cluster) TryEject(hosts int, maxPercent uint32) bool {
	p := &c.w[cEjected]
	for {
		cur := atomic.LoadUint64(p)
		if cur > 0 && (cur+1)*100 > uint64(maxPercent)*uint64(hosts) {
			return false
		}
		if atomic.CompareAndSwapUint64(p, cur, cur+1) {
			return true
		}
	}
}

// Uneject gives back one unit taken by TryEject.
func (c *Cluster) Uneject() {
	p := &c.w[cEjected]
	for {
		cur := atomic.LoadUint64(p)
		if cur == 0 || atomic.CompareAndSwapUint64(p, cur, cur-1) {
			return
		}
	}
}

// Breaker is one circuit-breaker counter of a cluster, global across
// processes. The zero value is unusable; get one from Cluster.Breaker.
// Methods are lock-free and allocation-free.
type Breaker struct {
	global *uint64
	shadow *uint64 // the worker's share of global, given back if it dies
}

// TryAcquire takes one unit if fewer than limit are taken, across every
// process, and reports whether it did. A caller that acquired must call
// Release exactly once.
func (b Breaker) TryAcquire(limit uint64) bool {
	for {
		cur := atomic.LoadUint64(b.global)
		if cur >= limit {
			return false
		}
		if atomic.CompareAndSwapUint64(b.global, cur, cur+1) {
			if b.shadow != nil {
				atomic.AddUint64(b.shadow, 1)
			}
			return true
		}
	}
}

// Acquire takes one unit whatever the count (a counter of requests in
// flight, see Region.HostActive); Release gives it back.
func (b Breaker) Acquire() {
	if b.shadow != nil {
		atomic.AddUint64(b.shadow, 1)
	}
	atomic.AddUint64(b.global, 1)
}

// Release gives back one unit taken by TryAcquire or Acquire.
func (b Breaker) Release() {
	if b.shadow != nil {
		atomic.AddUint64(b.shadow, ^uint64(0))
	}
	atomic.AddUint64(b.global, ^uint64(0))
}

// Count returns the number of units taken across every process.
func (b Breaker) Count() uint64 { return atomic.LoadUint64(b.global) }

// ReleaseWorker gives back every breaker unit held by worker index worker,
// and its requests in flight to each host (Region.HostActive):
// the supervisor calls it after reaping the worker (crashed or exited) and
// before giving its index to a new one, so that a dead worker's in-flight
// requests do not count against the limits forever.
func (r *Region) ReleaseWorker(worker int) error {
	if worker < 0 || worker >= r.workers {
		return fmt.Errorf("hoststate: worker index %d out of range 0..%d", worker, r.workers-1)
	}
	for i := 0; i < r.slots; i++ {
		s := r.slot(i)
		switch uint8(atomic.LoadUint64(&s[0]) >> 8) {
		case kindHost:
			if n := atomic.SwapUint64(r.shadowWord(worker, i, hostActiveShadow), 0); n != 0 {
				atomic.AddUint64(&s[payloadWord+hRqActive], -n)
			}
			continue
		case kindCluster:
		default:
			continue
		}
		for k := range numBreakers {
			if n := atomic.SwapUint64(r.shadowWord(worker, i, k), 0); n != 0 {
				atomic.AddUint64(&s[payloadWord+k], -n)
			}
		}
	}
	return nil
}
