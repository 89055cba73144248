// Package hoststate is the shared-memory region that holds upstream state
// every process of a sluice instance must agree on: per host, its health
// bits and the counters outlier detection reads; per cluster, its circuit
// breaker counts; per local rate limiter, its token buckets.
//
// sluice's workers are processes, so this state cannot live in a Go heap.
// The supervisor creates the region (a sealed memfd, like the stats region
// of package stats), passes its fd to every worker with SCM_RIGHTS, and
// hands it to the next supervisor on an upgrade. Every process maps it
// MAP_SHARED and updates it with atomic instructions only: limits are global
// across workers and not multiplied by their number, and health checks and
// outlier decisions made once (in the supervisor) are seen by every worker.
//
// # Layout
//
// A header page, then a hash table of fixed-size slots, each keyed by a
// string: (cluster, address) for a host, the cluster name for a cluster,
// and a limiter's key for a set of token buckets. A slot is 256 bytes: a
// state word, the key's hash, the key (at most MaxKeyLen bytes), and 16
// words of payload on cache lines of their own. After the table come the
// per-worker shadow counters of the circuit breakers, then the bucket arena.
//
// Keys are outside config generations: a new generation looks its hosts up
// by key and finds the state the previous one left, so health, ejections
// and breaker counts survive reloads and upgrades.
//
// # Concurrency
//
// Reading and updating a Host, a Cluster's breakers or a Bucket is
// lock-free, allocation-free and safe from any goroutine of any process.
// Adding keys (Add*), retiring and reclaiming them serialise on a lock in
// the region whose word holds the owner's pid, so that a process that dies
// holding it does not wedge the others: the next one steals it. Lookups
// (Host, Cluster, Buckets) take no lock; they only see slots whose key was
// completely written.
//
// Handles (*Host, *Cluster, Bucket) point into the mapping and must not be
// used after the Region is closed.
package hoststate
