package supervisor

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/health"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/outlier"
	"github.com/sluice-proxy/sluice/hotrestart"
)

// The host-state region, as the supervisor runs it.
//
// One region (gateway/hoststate) lives for the life of the service: the
// first supervisor creates it, every worker maps it (its fd travels in the
// Hello), a reload keeps it (hosts are keyed by cluster and address, so
// their health and outlier state carry over), and an upgrade hands it to
// the next supervisor. Each worker has an index in it, for the per-worker
// shadows of the circuit breakers: a generation takes one index per slot
// from a free list, a crashed worker's units are given back when it is
// reaped (Region.ReleaseWorker), and a generation's indexes return to the
// list once its workers are gone.
//
// Decisions that cost upstream traffic run here, once per instance: the
// active health checker of the serving config (restarted on each reload)
// and the outlier detector (one for the life of the process, given the
// clusters of each new config). N workers therefore never multiply
// health-check traffic by N.

// hostStateWorkersMin is the least number of worker indexes a new region
// holds; it holds slabsPerWorker per configured worker if that is more.
const hostStateWorkersMin = 64

// hostStateSlotsMin is the least number of key slots of a new region.
const hostStateSlotsMin = hoststate.DefaultSlots

// hostState is the supervisor's host-state region and what runs over it.
// Its fields are owned by the event loop; r is immutable.
type hostState struct {
	r    *hoststate.Region
	log  *zap.Logger
	free []int        // worker indexes no worker holds
	held map[int]bool // indexes the previous supervisor's workers hold

	det       *outlier.Detector
	detCancel context.CancelFunc
	hcCancel  context.CancelFunc // the running health checker's, nil if none
	clusters  map[string]bool    // the clusters of the config last applied
	stopped   bool

	cfg       *config.Config           // the config last applied
	warm      <-chan struct{}          // closes after the running checker's first checks; nil if none
	warmBound time.Duration            // how long a new generation waits on warm
	dns       map[string]*dnsRun       // the DNS clusters' watches, by cluster name
	resolved  map[string][]string      // the DNS clusters' last host sets, by cluster name
	call      func(func())             // runs a function on the event loop
	send      func(hotrestart.Message) // sends a message to every worker; called by the loop
	changed   func()                   // the admin view must be published again; called by the loop
}

// newHostState creates the region for cfg, or adopts the one in (an
// upgrade), and starts the outlier detector.
func newHostState(cfg *config.Config, in *hotrestart.Inherited, log *zap.Logger) (*hostState, error) {
	hs := &hostState{log: log, held: map[int]bool{}}
	if in != nil && in.HostStateFD > 0 {
		r, err := hoststate.Open(in.HostStateFD)
		if err != nil {
			log.Error("cannot open inherited host-state region; starting a new one", zap.Error(err))
		} else {
			in.HostStateFD = -1 // owned by r now
			hs.r = r
			for _, u := range in.HostStateUsed {
				hs.held[u] = true
			}
		}
	}
	if hs.r == nil {
		keys := 0
		for i := range cfg.Clusters {
			keys += 1 + len(cfg.Clusters[i].Endpoints)
		}
		r, err := hoststate.New(hoststate.Options{
			Slots:   max(hostStateSlotsMin, 4*keys),
			Workers: max(hostStateWorkersMin, slabsPerWorker*max(cfg.Server.Workers, 1)),
		})
		if err != nil {
			return nil, err
		}
		hs.r = r
	}
	for i := 0; i < hs.r.Workers(); i++ {
		if !hs.held[i] {
			hs.free = append(hs.free, i)
		}
	}
	hs.det = outlier.NewDetector(func(e outlier.Event) {
		if e.Ejected {
			log.Info("outlier ejected host", zap.String("cluster", e.Cluster), zap.String("host", e.Address),
				zap.Stringer("reason", e.Reason))
		} else {
			log.Info("outlier host back in service", zap.String("cluster", e.Cluster), zap.String("host", e.Address))
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	hs.detCancel = cancel
	go hs.det.Run(ctx)
	return hs, nil
}

// allocate gives each slot of g a worker index (-1 when none is free: that
// worker's breaker units are then not given back if it crashes).
func (hs *hostState) allocate(g *generation) {
	g.hostIdx = make([]int, len(g.slots))
	for i := range g.hostIdx {
		g.hostIdx[i] = -1
		if n := len(hs.free); n > 0 {
			g.hostIdx[i], hs.free = hs.free[0], hs.free[1:]
		}
	}
}

// reaped gives back the breaker units the worker of slot of g held.
func (hs *hostState) reaped(g *generation, slot int) {
	if slot < len(g.hostIdx) && g.hostIdx[slot] >= 0 {
		if err := hs.r.ReleaseWorker(g.hostIdx[slot]); err != nil {
			hs.log.Warn("cannot release worker's circuit breakers", zap.Error(err))
		}
	}
}

// release returns g's worker indexes to the free list; its workers are all
// gone. With none other than live draining, keys retired by reloads are
// reclaimed.
func (hs *hostState) release(g *generation, reclaim bool) {
	for _, i := range g.hostIdx {
		if i >= 0 {
			_ = hs.r.ReleaseWorker(i)
			hs.free = append(hs.free, i)
		}
	}
	g.hostIdx = nil
	if reclaim {
		hs.r.Reclaim()
	}
}

// previousGone frees the indexes the previous supervisor's workers held.
func (hs *hostState) previousGone() {
	for i := range hs.held {
		_ = hs.r.ReleaseWorker(i)
		hs.free = append(hs.free, i)
	}
	clear(hs.held)
	slices.Sort(hs.free)
}

// apply makes cfg the config the region's keys and checks follow: each
// cluster's hosts are added (failed and pending if health-checked, as in
// Envoy; hosts already known keep their state), hosts and clusters cfg
// dropped are retired, health-check flags of clusters no longer checked are
// cleared, the health checker is restarted over cfg's checked clusters, and
// the outlier detector is given cfg's clusters with outlier detection.
func (hs *hostState) apply(cfg *config.Config) {
	if hs.stopped {
		return
	}
	hs.cfg = cfg
	hs.syncDNS(cfg)
	var checked []health.Cluster
	var watched []outlier.Cluster
	now := time.Now()
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		var flags uint64
		if len(cc.HealthChecks) > 0 {
			flags = hoststate.FlagFailedActiveHC | hoststate.FlagPendingActiveHC
		}
		eps := hs.endpoints(cc)
		hosts, err := hs.r.SetHosts(cc.Name, eps, flags)
		if err != nil {
			hs.log.Error("host-state region: cannot add hosts", zap.String("cluster", cc.Name), zap.Error(err))
			continue
		}
		rec, err := hs.r.AddCluster(cc.Name, -1)
		if err != nil {
			hs.log.Error("host-state region: cannot add cluster", zap.String("cluster", cc.Name), zap.Error(err))
			continue
		}
		if len(cc.HealthChecks) == 0 {
			for _, h := range hosts {
				h.ClearFlags(hoststate.FlagFailedActiveHC | hoststate.FlagPendingActiveHC | hoststate.FlagImmediateHCFail)
			}
		} else if hc, err := cc.HealthChecks[0].Health(); err == nil {
			checked = append(checked, health.Cluster{Name: cc.Name, Addresses: slices.Clone(eps), Config: hc,
				UnejectOnPass: cc.OutlierDetection != nil && cc.OutlierDetection.UnejectOnHealthCheck()})
		}
		if cc.OutlierDetection != nil {
			if p, err := cc.OutlierDetection.Policy(); err == nil {
				watched = append(watched, outlier.Cluster{Name: cc.Name, Policy: p, Record: rec,
					Addresses: slices.Clone(eps), Hosts: hosts})
			}
		} else {
			// A cluster whose outlier detection was removed gives its
			// ejected hosts back at once.
			for _, h := range hosts {
				if h.ClearFlags(hoststate.FlagOutlierEjected)&hoststate.FlagOutlierEjected != 0 {
					h.ClearEjected()
					rec.Uneject()
				}
			}
		}
	}
	names := make(map[string]bool, len(cfg.Clusters))
	for i := range cfg.Clusters {
		names[cfg.Clusters[i].Name] = true
	}
	for name := range hs.clusters {
		if !names[name] {
			_, _ = hs.r.SetHosts(name, nil, 0) // retires its hosts
			hs.r.RetireCluster(name)
		}
	}
	hs.clusters = names
	hs.det.Set(watched, now)
	hs.restartChecks(checked)
}

// restartChecks stops the running health checker, if any, and starts one
// over clusters.
func (hs *hostState) restartChecks(clusters []health.Cluster) {
	hs.stopChecks()
	if len(clusters) == 0 {
		return
	}
	log := hs.log
	c, err := health.New(clusters, hs.r, health.Options{OnChange: func(cluster, address string, healthy bool) {
		log.Info("health check changed host", zap.String("cluster", cluster), zap.String("host", address),
			zap.Bool("healthy", healthy))
	}, OnUneject: func(cluster, address string) {
		log.Info("health check unejected host", zap.String("cluster", cluster), zap.String("host", address))
	}})
	if err != nil {
		log.Error("cannot start health checks", zap.Error(err))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs.hcCancel = cancel
	go c.Run(ctx)
	n := 0
	hs.warm, hs.warmBound = c.Warm(), 0
	for _, cl := range clusters {
		n += len(cl.Addresses)
		hs.warmBound = max(hs.warmBound, 2*cl.Config.Timeout+cl.Config.InitialJitter)
	}
	log.Info("health checks started", zap.Int("clusters", len(clusters)), zap.Int("hosts", n))
}

// stopChecks stops the running health checker. It does not wait: a check
// in progress ends within its timeout, and its verdict is as true as the
// next checker's.
func (hs *hostState) stopChecks() {
	hs.warm = nil
	if hs.hcCancel != nil {
		hs.hcCancel()
		hs.hcCancel = nil
	}
}

// stop ends the health checks and the outlier detector for good: the
// supervisor handed over to a new one, or exits.
func (hs *hostState) stop() {
	hs.stopped = true
	hs.stopChecks()
	hs.stopDNS()
	hs.detCancel()
}

// warmWaiter returns the wait, up to twice the health checks' timeout
// (plus their initial jitter), for the running checker's first check of
// every host, so that a new generation's workers do not serve newly
// checked hosts in panic mode meanwhile, as Envoy warms clusters. Called by
// the loop; the wait runs before a generation's workers start, on another
// goroutine during a reload (beside the loop).
func (hs *hostState) warmWaiter() func() {
	warm, bound, log := hs.warm, hs.warmBound, hs.log
	return func() {
		if warm == nil {
			return
		}
		start := time.Now()
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-warm:
			log.Info("health checks warmed", zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
		case <-t.C:
			log.Warn("health checks not warmed in time; starting workers", zap.Duration("waited", bound))
		}
	}
}

// handover adds the region and the worker indexes in use to in, for the
// next supervisor. The message refers to this process's descriptor.
func (hs *hostState) handover(in *hotrestart.Inherited) {
	in.HostStateFD = hs.r.FD()
	free := map[int]bool{}
	for _, i := range hs.free {
		free[i] = true
	}
	in.HostStateUsed = nil
	for i := 0; i < hs.r.Workers(); i++ {
		if !free[i] {
			in.HostStateUsed = append(in.HostStateUsed, i)
		}
	}
}
