package supervisor

import (
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	healthcheck "github.com/sluice-proxy/sluice/gateway/filters/http/health_check"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/hotrestart"
)

// Stats regions, as the supervisor runs them.
//
// A region holds slabsPerWorker worker slabs per configured worker, so that
// the workers of several generations (a reload's drain, an upgrade during
// one) write at once. A generation takes one slab per slot from the
// region's free list; a worker restarted after a crash continues in its
// slot's slab (its gauges are zeroed when it is reaped); once every worker
// of a replaced generation is gone, its slabs are retired (folded into the
// retired accumulator) and go back to the free list. A reload whose schema
// differs, or that finds too few free slabs, gets a new region; the
// snapshot merges every region by name until an old one has no writer
// left, when the serving region inherits it and it is closed. On an
// upgrade the regions go to the new supervisor (hotrestart.Inherited),
// which leaves the slabs of the old supervisor's workers alone until the
// old supervisor exits, then retires them.

// slabsPerWorker is how many generations' workers a region holds at once.
const slabsPerWorker = 4

// statsRegion is one region and its slab bookkeeping. r is immutable; the
// other fields are owned by the event loop.
type statsRegion struct {
	r     *stats.Region
	free  []int        // worker slabs nobody writes
	users int          // generations holding slabs
	held  map[int]bool // slabs the previous supervisor's workers hold
}

// statsState is the supervisor's view of its regions. The event loop
// changes it under mu; admin and statsd goroutines read it under mu.
type statsState struct {
	mu      sync.Mutex
	cur     *statsRegion
	regions []*statsRegion

	healthFailed bool      // guarded by mu
	started      time.Time // immutable
	firstStart   time.Time // immutable: the first supervisor of an upgrade chain
	epoch        int       // immutable: upgrades so far
}

// newStatsState returns the stats state of a supervisor: fresh, or
// inheriting the regions of the supervisor it takes over from.
func newStatsState(in *hotrestart.Inherited, log *zap.Logger) *statsState {
	now := time.Now()
	st := &statsState{started: now, firstStart: now}
	if in == nil {
		return st
	}
	st.epoch = in.Epoch + 1
	st.healthFailed = in.HealthCheckFailed
	if in.FirstStart != 0 {
		st.firstStart = time.Unix(0, in.FirstStart)
	}
	for i := range in.Regions {
		ir := &in.Regions[i]
		r, err := stats.OpenRegion(ir.FD)
		if err != nil {
			log.Error("cannot open inherited stats region", zap.Error(err))
			continue
		}
		ir.FD = -1 // owned by r now
		sr := &statsRegion{r: r, held: map[int]bool{}}
		for _, u := range ir.Used {
			sr.held[u] = true
		}
		for i := 0; i < r.Workers(); i++ {
			if !sr.held[i] {
				sr.free = append(sr.free, i)
			}
		}
		st.regions = append(st.regions, sr)
		if ir.Current {
			st.cur = sr
		}
	}
	return st
}

// allocate gives generation g a region and one slab per slot. Called by
// the loop.
func (st *statsState) allocate(g *generation) error {
	schema, err := stats.FromConfig(g.cfg)
	if err != nil {
		return fmt.Errorf("supervisor: stats: %w", err)
	}
	n := len(g.slots)
	st.mu.Lock()
	defer st.mu.Unlock()
	var sr *statsRegion
	for _, c := range st.regions {
		if c.r.Schema().Hash() == schema.Hash() && len(c.free) >= n {
			if sr == nil || c == st.cur {
				sr = c
			}
		}
	}
	if sr == nil {
		r, err := stats.NewRegion(schema, min(max(slabsPerWorker*n, 8), stats.MaxSlabs))
		if err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
		sr = &statsRegion{r: r}
		for i := 0; i < r.Workers(); i++ {
			sr.free = append(sr.free, i)
			st.flagSlab(sr, i)
		}
		st.regions = append(st.regions, sr)
		if st.cur == nil {
			st.cur = sr
		}
	}
	g.stats, g.slabs = sr, append([]int(nil), sr.free[:n]...)
	sr.free = sr.free[n:]
	sr.users++
	return nil
}

// serve makes sr the serving region: the server.* gauges are set there and
// zeroed in every other region. Called by the loop.
func (st *statsState) serve(g *generation) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if g.stats == nil {
		return
	}
	st.cur = g.stats
	for _, sr := range st.regions {
		s := sr.r.ServerSlab().Server()
		if sr != st.cur {
			s.Live.Set(0)
			s.Uptime.Set(0)
			s.HotRestartGeneration.Set(0)
			s.Concurrency.Set(0)
		}
	}
	s := st.cur.r.ServerSlab().Server()
	s.Live.Set(1)
	s.HotRestartGeneration.Set(int64(st.epoch))
	s.Concurrency.Set(int64(len(g.slots)))
	s.Uptime.Set(int64(time.Since(st.started) / time.Second))
}

// stopped clears server.live: the supervisor drains or stops.
func (st *statsState) stopped() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur != nil {
		st.cur.r.ServerSlab().Server().Live.Set(0)
	}
}

// workerRestarted counts a worker restart.
func (st *statsState) workerRestarted() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur != nil {
		st.cur.r.ServerSlab().Server().WorkerRestarts.Inc()
	}
}

// reaped zeroes the gauges of slot's slab of g: its worker is gone.
// Called by the loop.
func (st *statsState) reaped(g *generation, slot int) {
	if g.stats == nil || slot >= len(g.slabs) {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	g.stats.r.ZeroGauges(g.slabs[slot])
	st.flagSlab(g.stats, g.slabs[slot])
}

// release gives back the slabs of g, whose workers are all gone: they are
// retired and freed, unless retire is false (this supervisor handed over:
// the new one retires them once this one has exited). A region left
// without users that is not the serving one is inherited by the serving
// region and closed. Called by the loop.
func (st *statsState) release(g *generation, retire bool) {
	sr := g.stats
	if sr == nil {
		return
	}
	g.stats = nil
	st.mu.Lock()
	defer st.mu.Unlock()
	sr.users--
	if !retire {
		return
	}
	for _, i := range g.slabs {
		sr.r.Retire(i)
		st.flagSlab(sr, i)
		sr.free = append(sr.free, i)
	}
	st.fold()
}

// previousGone retires the slabs that the previous supervisor's workers
// held: it has exited, and its workers with it. Called by the loop.
func (st *statsState) previousGone() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sr := range st.regions {
		for i := range sr.held {
			sr.r.ZeroGauges(i)
			sr.r.Retire(i)
			st.flagSlab(sr, i)
			sr.free = append(sr.free, i)
		}
		sr.held = nil
		if sr != st.cur {
			s := sr.r.ServerSlab().Server()
			s.Live.Set(0)
			s.Uptime.Set(0)
			s.HotRestartGeneration.Set(0)
			s.Concurrency.Set(0)
		}
	}
	st.fold()
}

// fold lets the serving region inherit every other region that no worker
// writes any more, and closes those. Called with mu held.
func (st *statsState) fold() {
	if st.cur == nil {
		return
	}
	kept := st.regions[:0]
	for _, sr := range st.regions {
		if sr != st.cur && sr.users == 0 && len(sr.held) == 0 {
			st.cur.r.Inherit(sr.r)
			sr.r.Close()
			continue
		}
		kept = append(kept, sr)
	}
	st.regions = kept
}

// flagSlab writes the health check state into worker slab i of sr, where
// the health_check filter of the slab's worker reads it. Called with mu
// held.
func (st *statsState) flagSlab(sr *statsRegion, i int) {
	v := int64(0)
	if st.healthFailed {
		v = 1
	}
	if s := sr.r.Slab(i); s != nil && s.Has(healthcheck.FailedGauge, stats.KindGauge) {
		s.Gauge(healthcheck.FailedGauge).Set(v)
	}
}

// setHealthy passes or fails the health checks of every worker.
func (st *statsState) setHealthy(healthy bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.healthFailed = !healthy
	for _, sr := range st.regions {
		for i := 0; i < sr.r.Workers(); i++ {
			st.flagSlab(sr, i)
		}
	}
}

// snapshot aggregates every region: counters never go backwards across
// regions, since a region is folded into the serving one only once nobody
// writes it. The health check gauge reads 0 or 1.
func (st *statsState) snapshot() stats.Snapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur == nil {
		return nil
	}
	st.cur.r.ServerSlab().Server().Uptime.Set(int64(time.Since(st.started) / time.Second))
	snaps := make([]stats.Snapshot, 0, len(st.regions))
	for _, sr := range st.regions {
		snaps = append(snaps, sr.r.Snapshot())
	}
	snap := snaps[0]
	if len(snaps) > 1 {
		snap = stats.Merge(snaps...)
	}
	for i := range snap {
		if snap[i].Def.Name == healthcheck.FailedGauge {
			snap[i].Gauge = min(snap[i].Gauge, 1)
		}
	}
	return snap
}

// resetCounters makes every region's counters read as zero from now on.
func (st *statsState) resetCounters() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sr := range st.regions {
		sr.r.ResetCounters()
	}
}

// handover describes the regions for the supervisor taking over. The
// message refers to the regions' descriptors. Called by the loop.
func (st *statsState) handover() hotrestart.Inherited {
	st.mu.Lock()
	defer st.mu.Unlock()
	in := hotrestart.Inherited{Epoch: st.epoch, FirstStart: st.firstStart.UnixNano(), HealthCheckFailed: st.healthFailed}
	for _, sr := range st.regions {
		free := map[int]bool{}
		for _, i := range sr.free {
			free[i] = true
		}
		ir := hotrestart.InheritedRegion{FD: sr.r.FD(), Current: sr == st.cur}
		for i := 0; i < sr.r.Workers(); i++ {
			if !free[i] {
				ir.Used = append(ir.Used, i)
			}
		}
		in.Regions = append(in.Regions, ir)
	}
	return in
}

// healthy reports whether health checks pass.
func (st *statsState) healthy() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.healthFailed
}
