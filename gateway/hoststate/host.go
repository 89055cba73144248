package hoststate

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Health flags of a host (Envoy's Host::HealthFlag). A host with any of
// Unhealthy's bits set is not picked by load balancing (outside panic mode).
const (
	// FlagFailedActiveHC: the active health checker considers the host
	// unhealthy (Envoy FAILED_ACTIVE_HC).
	FlagFailedActiveHC uint64 = 1 << iota
	// FlagPendingActiveHC: the host has not been health checked yet; it
	// starts unhealthy and one passing check makes it healthy (Envoy
	// PENDING_ACTIVE_HC).
	FlagPendingActiveHC
	// FlagImmediateHCFail: the host answered a health check with
	// x-envoy-immediate-health-check-fail (Envoy
	// EXCLUDED_VIA_IMMEDIATE_HC_FAIL).
	FlagImmediateHCFail
	// FlagOutlierEjected: outlier detection ejected the host (Envoy
	// FAILED_OUTLIER_CHECK).
	FlagOutlierEjected
	// FlagDegradedActiveHC: the host answered x-envoy-degraded.
	FlagDegradedActiveHC
)

// Unhealthy is the set of flags that take a host out of load balancing.
const Unhealthy = FlagFailedActiveHC | FlagImmediateHCFail | FlagOutlierEjected

// Host payload words.
const (
	hFlags         = iota
	hExternal      // success<<32 | total, current outlier interval
	hLocal         // success<<32 | total of local-origin results
	hConsec5xx     // consecutive 5xx
	hConsecGateway // consecutive 502/503/504
	hConsecLocal   // consecutive local-origin failures
	hEjections     // ejection multiplier (Envoy num_ejections)
	hEjectedAt     // unix ns of the last ejection
	hEjectedUntil  // unix ns the current ejection ends
	hChecks        // active health checks done (for tests and /clusters)
	hRqTotal       // requests sent to the host (Envoy's per-host rq_total)
	hRqSuccess     // responses below 500
	hRqError       // 5xx responses and local-origin failures
	hRqActive      // requests in flight; each worker's share in its shadow word
	hHealthySince  // unix ns active health checking last brought the host back (0: never)
)

// hostActiveShadow is the shadow word (per worker and host slot) holding
// the worker's share of hRqActive, given back by ReleaseWorker.
const hostActiveShadow = 0

// Result classifies one upstream response or failure for outlier
// detection's counters (Envoy's Result and HTTP status paths).
type Result uint8

// Results. Local-origin results are failures sluice observed itself
// (connect failure, timeout, reset), as opposed to a status the upstream
// sent.
const (
	// ResultSuccess: a response below 500 (external origin).
	ResultSuccess Result = iota
	// Result5xx: a 5xx other than 502, 503 or 504.
	Result5xx
	// ResultGatewayFailure: a 502, 503 or 504.
	ResultGatewayFailure
	// ResultLocalSuccess: the connection to the host succeeded (counts for
	// local-origin detection only; external success follows as a status).
	ResultLocalSuccess
	// ResultLocalFailure: connect failure, timeout or reset.
	ResultLocalFailure
)

// Host is one upstream host's shared record. Every method is an atomic
// operation on the region, safe from any goroutine of any process, and
// allocation-free.
type Host struct {
	w [payloadWords]uint64
}

// Flags returns the host's health flags.
func (h *Host) Flags() uint64 { return atomic.LoadUint64(&h.w[hFlags]) }

// Healthy reports whether no Unhealthy flag is set.
func (h *Host) Healthy() bool { return h.Flags()&Unhealthy == 0 }

// SetFlags sets bits and returns the flags before.
func (h *Host) SetFlags(bits uint64) uint64 { return atomic.OrUint64(&h.w[hFlags], bits) }

// ClearFlags clears bits and returns the flags before.
func (h *Host) ClearFlags(bits uint64) uint64 { return atomic.AndUint64(&h.w[hFlags], ^bits) }

// CompareAndSwapFlags replaces the flags if they are old.
func (h *Host) CompareAndSwapFlags(old, new uint64) bool {
	return atomic.CompareAndSwapUint64(&h.w[hFlags], old, new)
}

// RecordResult counts one result and returns the consecutive-failure
// counters it advanced, after the update (zero for those it did not touch
// or reset). It costs two or three atomic operations.
func (h *Host) RecordResult(r Result) (c5xx, gateway, local uint32) {
	switch r {
	case ResultSuccess:
		atomic.AddUint64(&h.w[hExternal], 1<<32|1)
		resetIfSet(&h.w[hConsec5xx])
		resetIfSet(&h.w[hConsecGateway])
	case Result5xx:
		atomic.AddUint64(&h.w[hExternal], 1)
		resetIfSet(&h.w[hConsecGateway])
		c5xx = uint32(atomic.AddUint64(&h.w[hConsec5xx], 1))
	case ResultGatewayFailure:
		atomic.AddUint64(&h.w[hExternal], 1)
		c5xx = uint32(atomic.AddUint64(&h.w[hConsec5xx], 1))
		gateway = uint32(atomic.AddUint64(&h.w[hConsecGateway], 1))
	case ResultLocalSuccess:
		atomic.AddUint64(&h.w[hLocal], 1<<32|1)
		resetIfSet(&h.w[hConsecLocal])
	case ResultLocalFailure:
		atomic.AddUint64(&h.w[hLocal], 1)
		local = uint32(atomic.AddUint64(&h.w[hConsecLocal], 1))
	}
	return c5xx, gateway, local
}

// resetIfSet stores 0 only when needed, so that a run of successes does not
// write the shared cache line.
func resetIfSet(p *uint64) {
	if atomic.LoadUint64(p) != 0 {
		atomic.StoreUint64(p, 0)
	}
}

// Consecutive returns the consecutive 5xx, gateway-failure and
// local-origin-failure counts.
func (h *Host) Consecutive() (c5xx, gateway, local uint32) {
	return uint32(atomic.LoadUint64(&h.w[hConsec5xx])), uint32(atomic.LoadUint64(&h.w[hConsecGateway])),
		uint32(atomic.LoadUint64(&h.w[hConsecLocal]))
}

// ResetConsecutive zeroes the consecutive counters (after an ejection).
func (h *Host) ResetConsecutive() {
	atomic.StoreUint64(&h.w[hConsec5xx], 0)
	atomic.StoreUint64(&h.w[hConsecGateway], 0)
	atomic.StoreUint64(&h.w[hConsecLocal], 0)
}

// TakeInterval returns the success and total counts of external and
// local-origin results since the last call, and starts a new interval.
// Only the outlier detector calls it.
func (h *Host) TakeInterval() (extSuccess, extTotal, localSuccess, localTotal uint32) {
	e := atomic.SwapUint64(&h.w[hExternal], 0)
	l := atomic.SwapUint64(&h.w[hLocal], 0)
	return uint32(e >> 32), uint32(e), uint32(l >> 32), uint32(l)
}

// Ejections returns the ejection multiplier.
func (h *Host) Ejections() uint32 { return uint32(atomic.LoadUint64(&h.w[hEjections])) }

// AddEjections adds d (may be negative) to the ejection multiplier, never
// below zero, and returns the new value.
func (h *Host) AddEjections(d int32) uint32 {
	for {
		old := atomic.LoadUint64(&h.w[hEjections])
		n := int64(old) + int64(d)
		if n < 0 {
			n = 0
		}
		if atomic.CompareAndSwapUint64(&h.w[hEjections], old, uint64(n)) {
			return uint32(n)
		}
	}
}

// SetEjected records when the current ejection started and ends.
func (h *Host) SetEjected(at, until time.Time) {
	atomic.StoreUint64(&h.w[hEjectedAt], uint64(at.UnixNano()))
	atomic.StoreUint64(&h.w[hEjectedUntil], uint64(until.UnixNano()))
}

// EjectedUntil returns when the current (or last) ejection ends.
func (h *Host) EjectedUntil() time.Time {
	return time.Unix(0, int64(atomic.LoadUint64(&h.w[hEjectedUntil])))
}

// SetHealthySince records that active health checking brought the host
// back to healthy at t (the start of its slow start).
func (h *Host) SetHealthySince(t time.Time) {
	atomic.StoreUint64(&h.w[hHealthySince], uint64(t.UnixNano()))
}

// HealthySince returns when active health checking last brought the host
// back to healthy, or the zero time if it never did.
func (h *Host) HealthySince() time.Time {
	ns := atomic.LoadUint64(&h.w[hHealthySince])
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

// CountCheck counts one active health check and returns the new count.
func (h *Host) CountCheck() uint64 { return atomic.AddUint64(&h.w[hChecks], 1) }

// Checks returns the number of active health checks done.
func (h *Host) Checks() uint64 { return atomic.LoadUint64(&h.w[hChecks]) }

// AddHost returns the record of address in cluster, creating it with flags
// if it does not exist (a retired record comes back as it was). The
// supervisor calls it when a generation or a DNS answer adds a host; pass
// FlagFailedActiveHC|FlagPendingActiveHC for a cluster with health checks,
// as Envoy does.
func (r *Region) AddHost(cluster, address string, flags uint64) (*Host, error) {
	k, hash, err := makeKey(kindHost, cluster, address)
	if err != nil {
		return nil, err
	}
	r.lock()
	defer r.unlock()
	i, _, err := r.add(kindHost, &k, hash, func(p []uint64) error {
		atomic.StoreUint64(&p[hFlags], flags)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r.host(i), nil
}

// Host returns the live record of address in cluster, or nil. It takes no
// lock and allocates nothing; workers call it when they build a generation
// or receive a new host set, and keep the pointer.
func (r *Region) Host(cluster, address string) *Host {
	k, hash, err := makeKey(kindHost, cluster, address)
	if err != nil {
		return nil
	}
	i := r.find(&k, hash)
	if i < 0 {
		return nil
	}
	return r.host(i)
}

func (r *Region) host(i int) *Host {
	return (*Host)(unsafe.Pointer(&r.table[i*slotWords+payloadWord]))
}

// SetHosts makes cluster's host keys exactly addresses: it adds the
// missing ones with flags (see AddHost) and retires the others. It returns
// the records in the order of addresses.
func (r *Region) SetHosts(cluster string, addresses []string, flags uint64) ([]*Host, error) {
	keep := make(map[string]bool, len(addresses))
	out := make([]*Host, len(addresses))
	for i, a := range addresses {
		h, err := r.AddHost(cluster, a, flags)
		if err != nil {
			return nil, err
		}
		keep[a], out[i] = true, h
	}
	r.lock()
	defer r.unlock()
	r.each(func(i int, st uint8, kind byte, c, a string) {
		if st == stateLive && kind == kindHost && c == cluster && !keep[a] {
			r.setState(i, stateRetired)
		}
	})
	return out, nil
}

// ClearEjected marks the host's ejection as over (EjectedUntil returns
// the zero Unix time). Only the outlier detector calls it, after clearing
// FlagOutlierEjected.
func (h *Host) ClearEjected() { atomic.StoreUint64(&h.w[hEjectedUntil], 0) }

// EjectionPending reports whether the host is ejected and the ejecting
// process has not yet written the ejection's end time.
func (h *Host) EjectionPending() bool { return atomic.LoadUint64(&h.w[hEjectedUntil]) == 0 }

// CountRequest counts a request sent to the host (rq_total).
func (h *Host) CountRequest() { atomic.AddUint64(&h.w[hRqTotal], 1) }

// CountOutcome counts a request's outcome: ok for a response below 500,
// otherwise a 5xx or a local-origin failure (rq_success, rq_error).
func (h *Host) CountOutcome(ok bool) {
	if ok {
		atomic.AddUint64(&h.w[hRqSuccess], 1)
	} else {
		atomic.AddUint64(&h.w[hRqError], 1)
	}
}

// Requests returns the host's request counters, summed over every worker
// and generation since the region was created.
func (h *Host) Requests() (total, success, errors uint64) {
	return atomic.LoadUint64(&h.w[hRqTotal]), atomic.LoadUint64(&h.w[hRqSuccess]), atomic.LoadUint64(&h.w[hRqError])
}

// Active returns the host's requests in flight across every worker.
func (h *Host) Active() int64 { return int64(atomic.LoadUint64(&h.w[hRqActive])) }

// HostActive returns worker's counter of h's requests in flight (Acquire
// when one starts, Release when it ends): a breaker without a limit on the
// host's shared count, whose per-worker share ReleaseWorker gives back when
// the worker dies with requests in flight. h must be a record of r; a worker
// index out of range gives a counter without a share.
func (r *Region) HostActive(h *Host, worker int) Breaker {
	b := Breaker{global: &h.w[hRqActive]}
	if worker >= 0 && worker < r.workers {
		slot := int((uintptr(unsafe.Pointer(h)) - uintptr(unsafe.Pointer(&r.table[0]))) / 8 / slotWords)
		b.shadow = r.shadowWord(worker, slot, hostActiveShadow)
	}
	return b
}
