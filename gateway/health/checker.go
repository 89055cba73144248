package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
)

// Cluster is one health-checked cluster: its name, its hosts' addresses
// and its check.
type Cluster struct {
	Name      string
	Addresses []string
	Config    *Config
	// UnejectOnPass makes a passing check bring back a healthy host that
	// outlier detection ejected, clearing its outlier counters (Envoy's
	// successful_active_health_check_uneject_host, true by default when
	// the cluster has outlier detection).
	UnejectOnPass bool
}

// Options are the Checker's hooks; the zero value is valid.
type Options struct {
	// OnChange is called when a host becomes healthy or unhealthy (for
	// logs, stats and tests). It runs on the host's checking goroutine and
	// must not block.
	OnChange func(cluster, address string, healthy bool)
	// OnUneject is called when a passing check brought back a host that
	// outlier detection had ejected (Cluster.UnejectOnPass), on the same
	// terms as OnChange.
	OnUneject func(cluster, address string)
}

// Run health-checks clusters until ctx is done, writing verdicts into the
// region (creating host records as needed). It returns when every checking
// goroutine has stopped, or at once with an error for an invalid config.
func Run(ctx context.Context, clusters []Cluster, region *hoststate.Region, opts Options) error {
	c, err := New(clusters, region, opts)
	if err != nil {
		return err
	}
	c.Run(ctx)
	return nil
}

// Checker health-checks a set of clusters. Build it with New, then call
// Run once. Warm may be called from any goroutine.
type Checker struct {
	hosts []*hostCheck
	opts  Options
	warm  chan struct{}
	first sync.WaitGroup
}

type hostCheck struct {
	cluster, addr string
	cfg           *Config
	uneject       bool // Cluster.UnejectOnPass
	rec           *hoststate.Host
	crec          *hoststate.Cluster
	p             prober

	// Owned by the host's goroutine.
	successes, failures uint32
	// failed is whether the host was failed when its last verdict was
	// applied: a failure flag found set without it was set by someone else.
	failed bool
}

// New validates clusters and prepares a checker: it adds each host's
// record to the region (a new host starts failed and pending, as in
// Envoy; a host already known keeps its state) and dials nothing.
func New(clusters []Cluster, region *hoststate.Region, opts Options) (*Checker, error) {
	c := &Checker{opts: opts, warm: make(chan struct{})}
	for _, cl := range clusters {
		send, receive, err := cl.Config.validate()
		if err != nil {
			return nil, fmt.Errorf("health: cluster %q: %w", cl.Name, err)
		}
		crec, err := region.AddCluster(cl.Name, -1)
		if err != nil {
			return nil, err
		}
		for _, a := range cl.Addresses {
			rec, err := region.AddHost(cl.Name, a, hoststate.FlagFailedActiveHC|hoststate.FlagPendingActiveHC)
			if err != nil {
				return nil, err
			}
			h := &hostCheck{cluster: cl.Name, addr: a, cfg: cl.Config, uneject: cl.UnejectOnPass, rec: rec, crec: crec}
			switch cl.Config.Type {
			case TypeHTTP:
				host, exp := cl.Config.HTTP.Host, cl.Config.HTTP.ExpectedStatuses
				if host == "" {
					host = cl.Name
				}
				if len(exp) == 0 {
					exp = [][2]int{{200, 201}}
				}
				h.p = &httpProber{addr: a, host: host, path: cl.Config.HTTP.Path, expected: exp}
			case TypeTCP:
				h.p = &tcpProber{addr: a, send: send, receive: receive}
			case TypeGRPC:
				auth := cl.Config.GRPC.Authority
				if auth == "" {
					auth = cl.Name
				}
				gp, err := newGRPCProber(a, auth, cl.Config.GRPC.ServiceName)
				if err != nil {
					c.close()
					return nil, err
				}
				h.p = gp
			}
			c.hosts = append(c.hosts, h)
		}
	}
	return c, nil
}

func (c *Checker) close() {
	for _, h := range c.hosts {
		if h.p != nil {
			h.p.close()
		}
	}
}

// Warm is closed once every host has had its first check: the supervisor
// waits on it (bounded) before starting workers of a generation with new
// checked hosts, as Envoy warms a cluster before using it.
func (c *Checker) Warm() <-chan struct{} { return c.warm }

// Run checks every host, each on its own goroutine, until ctx is done.
func (c *Checker) Run(ctx context.Context) {
	defer c.close()
	var wg sync.WaitGroup
	c.first.Add(len(c.hosts))
	go func() { c.first.Wait(); close(c.warm) }()
	for _, h := range c.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, h)
		}()
	}
	wg.Wait()
}

func (c *Checker) loop(ctx context.Context, h *hostCheck) {
	firstDone := false
	defer func() {
		if !firstDone {
			c.first.Done()
		}
	}()
	wait := randDuration(h.cfg.InitialJitter)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pctx, cancel := probeContext(ctx, h.cfg.Timeout)
		v := h.p.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.apply(h, v)
		if !firstDone {
			firstDone = true
			c.first.Done()
		}
		wait = nextInterval(h.cfg, h.crec.HadTraffic())
	}
}

// apply records one verdict, with Envoy's transitions.
func (c *Checker) apply(h *hostCheck, v verdict) {
	h.rec.CountCheck()
	before := h.rec.Flags()
	switch v {
	case pass:
		if before&hoststate.FlagFailedActiveHC != 0 && !h.failed {
			// Failed by someone else: a routed response carrying
			// x-envoy-immediate-health-check-fail (or a checker before a
			// reload). As in Envoy, healthy_threshold passes count from
			// the failure, not from the passes before it.
			h.successes = 0
		}
		h.failures = 0
		h.successes++
		if before&hoststate.FlagFailedActiveHC != 0 &&
			(before&hoststate.FlagPendingActiveHC != 0 || h.successes >= h.cfg.HealthyThreshold) {
			h.rec.ClearFlags(hoststate.FlagFailedActiveHC | hoststate.FlagImmediateHCFail)
		}
		h.rec.ClearFlags(hoststate.FlagPendingActiveHC)
	case fail, activeFail:
		h.successes = 0
		h.failures++
		if before&hoststate.FlagFailedActiveHC == 0 && (v == activeFail || h.failures >= h.cfg.UnhealthyThreshold) {
			h.rec.SetFlags(hoststate.FlagFailedActiveHC)
		}
		h.rec.ClearFlags(hoststate.FlagPendingActiveHC)
	case immediateFail:
		h.successes = 0
		h.failures++
		h.rec.SetFlags(hoststate.FlagFailedActiveHC | hoststate.FlagImmediateHCFail)
		h.rec.ClearFlags(hoststate.FlagPendingActiveHC)
	}
	wasHealthy := before&hoststate.FlagFailedActiveHC == 0
	isHealthy := h.rec.Flags()&hoststate.FlagFailedActiveHC == 0
	h.failed = !isHealthy
	if !wasHealthy && isHealthy && before&hoststate.FlagPendingActiveHC == 0 {
		// Back from a failure (not a first check): the load balancers'
		// slow start counts from here.
		h.rec.SetHealthySince(time.Now())
	}
	if wasHealthy != isHealthy && c.opts.OnChange != nil {
		c.opts.OnChange(h.cluster, h.addr, isHealthy)
	}
	if v == pass && isHealthy && h.uneject && h.rec.Flags()&hoststate.FlagOutlierEjected != 0 &&
		h.rec.ClearFlags(hoststate.FlagOutlierEjected)&hoststate.FlagOutlierEjected != 0 {
		// As in Envoy: the host is back, its outlier counters cleared; its
		// unit of the cluster's ejection budget is given back.
		h.rec.ClearEjected()
		h.rec.ResetConsecutive()
		h.crec.Uneject()
		if c.opts.OnUneject != nil {
			c.opts.OnUneject(h.cluster, h.addr)
		}
	}
}

// nextInterval is the wait before the next check: no_traffic_interval
// while the cluster never had traffic, else interval, plus both jitters.
func nextInterval(cfg *Config, hadTraffic bool) time.Duration {
	base := cfg.Interval
	if !hadTraffic {
		base = cfg.NoTrafficInterval
		if base == 0 {
			base = DefaultNoTrafficInterval
		}
	}
	d := base + randDuration(cfg.IntervalJitter)
	if cfg.IntervalJitterPercent > 0 {
		d += randDuration(cfg.Interval * time.Duration(cfg.IntervalJitterPercent) / 100)
	}
	return d
}

func randDuration(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(max)))
}
