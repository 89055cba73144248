// Package stats holds sluice's counters, gauges and histograms in shared
// memory, and renders them for the admin API, Prometheus and statsd.
//
// # Layout
//
// The supervisor builds a Schema from the config (the same config always
// gives the same names in the same order) and creates a Region: one memfd
// holding a header, the schema itself, and a fixed number of slabs. A slab is
// a contiguous array of uint64 counters, int64 gauges and histogram buckets,
// one slot per schema entry. Two slabs are reserved: the retired slab (values
// folded in from recycled slabs and from older regions) and the baseline slab
// (what /reset_counters subtracts). The other slabs belong to one writer
// each: the supervisor takes one for the server.* stats, and every worker
// process takes the slab of its worker index.
//
// The memfd is passed to workers (and, on a binary upgrade, to the new
// supervisor) with SCM_RIGHTS; OpenRegion maps it and reads the schema back
// from the region, so the reader needs no config.
//
// # Hot path
//
// A worker resolves typed handles once, when it builds a config generation:
// Slab.Counter, Slab.Gauge, Slab.Histogram, or the groups Slab.Listener,
// Slab.HTTP, Slab.Cluster and Slab.Server. Recording is one atomic add on
// shared memory: no locks, no maps, no allocation.
//
// # Aggregation and restarts
//
// Region.Snapshot sums every slab: counters are retired + all slabs −
// baseline; gauges are the sum over slabs (the supervisor zeroes a dead
// worker's gauges with Region.ZeroGauges when it reaps it), or their
// largest value for a gauge every worker holds a copy of (Def.Max); histograms are
// merged bucket by bucket. Shared memory outlives the writer, so a worker
// killed with SIGKILL loses no increment and its replacement keeps counting
// in the same slab. Region.Retire folds a slab into the retired slab before it
// is reused, and Region.Inherit folds a whole older region in by name when a
// reload changes the schema, so counters never go backwards. Histograms
// survive the same way: they are cumulative since the region was created and
// are never reset by a restart, a reload or an upgrade (only by
// ResetCounters).
//
// # Concurrency
//
// Handles are safe for concurrent use by any number of goroutines of the
// process that owns the slab. Snapshot may run concurrently with writers: it
// reads each word atomically, so a snapshot is not a consistent cut across
// stats, but no single value is torn. Retire, Inherit, ZeroGauges and
// ResetCounters are supervisor operations; they must not run concurrently
// with each other, and Retire and ZeroGauges only after the slab's writer has
// exited.
package stats
