// Package cluster holds a worker's upstream clusters: their hosts, the
// load-balancing policy that picks among them, and each host's connection
// pool.
//
// A Manager is built once per config generation and is then read-only: its
// methods are safe for concurrent use. Host runtime state (active requests)
// is updated atomically.
//
// Host health, outlier ejections and circuit-breaker counts live in the
// shared host-state region (gateway/hoststate), keyed by cluster and
// address, so that every worker process sees the same state and it
// survives reloads: the supervisor's health checker and outlier detector
// write it, the load balancer reads it (Cluster.Healthy), the router
// records results and takes breakers through a Cluster's Record and
// Outlier.
package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/lb"
	"github.com/sluice-proxy/sluice/gateway/outlier"
	"github.com/sluice-proxy/sluice/gateway/pool"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tlsconn"
)

// ErrNoHealthyUpstream is returned when no host can take a request (flag UH).
var ErrNoHealthyUpstream = errors.New("cluster: no healthy upstream")

// Host is one upstream endpoint. Fields other than Address are accessed
// atomically; Host values must not be copied.
type Host struct {
	Address string
	Pool    *pool.Pool
	// State is the host's shared record: health flags, outlier counters.
	State *hoststate.Host

	active atomic.Int64
	total  atomic.Uint64
}

// Begin records the start of a request to h; End its end.
func (h *Host) Begin() { h.active.Add(1); h.total.Add(1) }

// End records the end of a request started with Begin.
func (h *Host) End() { h.active.Add(-1) }

// Active returns the number of requests in flight to h.
func (h *Host) Active() int64 { return h.active.Load() }

// Cluster is a named group of hosts.
type Cluster struct {
	Name  string
	Hosts []*Host
	Cfg   *config.Cluster
	// Stats are the cluster's stat handles (cluster.<name>.*).
	Stats *stats.ClusterStats
	// Overflow are the circuit-breaker overflow counters.
	Overflow OverflowStats
	// Record is the cluster's shared record seen as this worker: circuit
	// breakers, ejection count, had-traffic.
	Record *hoststate.Cluster
	// Outlier records upstream results for outlier detection; nil when the
	// cluster has none.
	Outlier *outlier.Recorder
	// Limits are the circuit-breaker thresholds (global across workers).
	Limits Limits

	policy lb.Policy
}

// Limits are a cluster's circuit-breaker thresholds.
type Limits struct {
	Connections, Pending, Requests, Retries uint64
}

// OverflowStats count requests and connections refused by a circuit
// breaker (flag UO), and the retries of the cluster's requests.
type OverflowStats struct {
	RqPending     *stats.Counter // upstream_rq_pending_overflow
	Cx            *stats.Counter // upstream_cx_overflow
	RqRetry       *stats.Counter // upstream_rq_retry_overflow
	Retry         *stats.Counter // upstream_rq_retry
	RetryOK       *stats.Counter // upstream_rq_retry_success
	PerTryTimeout *stats.Counter // upstream_rq_per_try_timeout
}

// Address implements lb.Hosts.
func (c *Cluster) Address(i int) string { return c.Hosts[i].Address }

// Weight implements lb.Hosts. Endpoints carry no weight yet: all are 1.
func (c *Cluster) Weight(int) uint32 { return 1 }

// HealthyLen implements lb.Hosts: the hosts neither failed by active
// health checking nor ejected by outlier detection.
func (c *Cluster) HealthyLen() int {
	n := 0
	for _, h := range c.Hosts {
		if h.State.Healthy() {
			n++
		}
	}
	return n
}

// Active implements lb.Hosts.
func (c *Cluster) Active(i int) int64 { return c.Hosts[i].Active() }

// Since implements lb.Hosts: the zero time for the hosts a cluster starts
// with, so that they skip slow start, as in Envoy.
func (c *Cluster) Since(int) time.Time { return time.Time{} }

// Len implements lb.Hosts.
func (c *Cluster) Len() int { return len(c.Hosts) }

// Healthy implements lb.Hosts: one atomic load of the host's shared flags.
func (c *Cluster) Healthy(i int) bool { return c.Hosts[i].State.Healthy() }

// Pick chooses a host by the cluster's load-balancing policy.
// r carries the request's hash for ring hash and maglev; nil for none.
func (c *Cluster) Pick(r *lb.Request) (*Host, error) {
	i := c.policy.Pick(r)
	if i < 0 {
		return nil, fmt.Errorf("cluster %q: %w", c.Name, ErrNoHealthyUpstream)
	}
	return c.Hosts[i], nil
}

// Manager holds every cluster of a generation.
type Manager struct {
	byName map[string]*Cluster
	region *hoststate.Region
}

var (
	privateOnce   sync.Once
	privateRegion *hoststate.Region
	privateErr    error
)

// processRegion returns the process's own host-state region, made on first
// use and never unmapped (in-flight requests may hold pointers into it).
func processRegion() (*hoststate.Region, error) {
	privateOnce.Do(func() {
		privateRegion, privateErr = hoststate.New(hoststate.Options{Slots: 1 << 16, Workers: 1})
		if privateErr != nil {
			privateErr = fmt.Errorf("cluster: %w", privateErr)
		}
	})
	return privateRegion, privateErr
}

// Shared is the worker's host-state region and its index in it (for the
// circuit breakers' per-worker shadows). A zero Shared gives the manager a
// private region: state is then per process (tests, sluice validate).
type Shared struct {
	Region *hoststate.Region
	Worker int
}

// NewManager builds the clusters of cfg over a private host-state region.
// It opens no connection.
func NewManager(cfg *config.Config, slab *stats.Slab) (*Manager, error) {
	return NewManagerWith(cfg, slab, Shared{})
}

// NewManagerWith builds the clusters of cfg, their hosts' state in
// sh.Region. It opens no connection. Hosts the supervisor has not yet
// added to the region are added: failed and pending if their cluster is
// health-checked (as in Envoy), healthy otherwise.
func NewManagerWith(cfg *config.Config, slab *stats.Slab, sh Shared) (*Manager, error) {
	m := &Manager{byName: make(map[string]*Cluster, len(cfg.Clusters)), region: sh.Region}
	if m.region == nil {
		r, err := processRegion()
		if err != nil {
			return nil, err
		}
		m.region, sh.Worker = r, 0
	}
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		policy, err := lb.New(lbConfig(cc))
		if err != nil {
			return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
		}
		c := &Cluster{Name: cc.Name, Cfg: cc, policy: policy, Stats: slab.Cluster(cc.Name)}
		if err := m.shared(c, slab, sh.Worker); err != nil {
			return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
		}
		c.Stats.MembershipTotal.Set(int64(len(cc.Endpoints)))
		c.Stats.MembershipHealthy.Set(int64(len(cc.Endpoints)))
		for _, ep := range cc.Endpoints {
			opts := pool.Options{
				Address:        ep,
				ConnectTimeout: cc.ConnectTimeout.Duration,
				MaxIdle:        cc.MaxIdleConnections,
				IdleTimeout:    cc.IdleTimeout.Duration,
				Stats:          c.Stats,
			}
			if cc.TLS != nil {
				host, _, _ := net.SplitHostPort(ep)
				tc, err := tlsconn.Client(cc.TLS, host)
				if err != nil {
					return nil, cfg.TableError(fmt.Sprintf("cluster[%d].tls", i), err)
				}
				opts.TLS = tc
			}
			st, err := m.hostState(cc, ep)
			if err != nil {
				return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
			}
			cb := c.Record.Breaker(hoststate.Connections)
			opts.Connections = &cb
			opts.MaxConnections = c.Limits.Connections
			opts.Overflow = c.Overflow.Cx
			c.Hosts = append(c.Hosts, &Host{Address: ep, Pool: pool.New(opts), State: st})
		}
		if c.Outlier != nil {
			c.Outlier.SetHosts(len(c.Hosts))
		}
		policy.Update(c)
		m.byName[cc.Name] = c
	}
	return m, nil
}

// shared resolves c's shared record, outlier recorder, limits and
// overflow counters.
func (m *Manager) shared(c *Cluster, slab *stats.Slab, worker int) error {
	rec := m.region.Cluster(c.Name, worker)
	if rec == nil {
		var err error
		if rec, err = m.region.AddCluster(c.Name, worker); err != nil {
			return fmt.Errorf("cluster: %q: %w", c.Name, err)
		}
	}
	c.Record = rec
	cc := c.Cfg
	if cc.OutlierDetection != nil {
		p, err := cc.OutlierDetection.Policy()
		if err != nil {
			return fmt.Errorf("cluster: %q: outlier_detection: %w", c.Name, err)
		}
		c.Outlier = outlier.NewRecorder(p, rec, len(cc.Endpoints))
	}
	l := &c.Limits
	l.Connections, l.Pending, l.Requests, l.Retries = cc.CircuitBreakers.Limits()
	p := stats.ClusterName(c.Name)
	c.Overflow = OverflowStats{
		RqPending:     slab.Counter(p + "upstream_rq_pending_overflow"),
		Cx:            slab.Counter(p + "upstream_cx_overflow"),
		RqRetry:       slab.Counter(p + "upstream_rq_retry_overflow"),
		Retry:         slab.Counter(p + "upstream_rq_retry"),
		RetryOK:       slab.Counter(p + "upstream_rq_retry_success"),
		PerTryTimeout: slab.Counter(p + "upstream_rq_per_try_timeout"),
	}
	return nil
}

// hostState returns the shared record of endpoint ep of cc, adding it when
// the supervisor has not.
func (m *Manager) hostState(cc *config.Cluster, ep string) (*hoststate.Host, error) {
	if h := m.region.Host(cc.Name, ep); h != nil {
		return h, nil
	}
	var flags uint64
	if len(cc.HealthChecks) > 0 {
		flags = hoststate.FlagFailedActiveHC | hoststate.FlagPendingActiveHC
	}
	h, err := m.region.AddHost(cc.Name, ep, flags)
	if err != nil {
		return nil, fmt.Errorf("cluster: %q: host %s: %w", cc.Name, ep, err)
	}
	return h, nil
}

// Region returns the host-state region the manager's clusters use.
func (m *Manager) Region() *hoststate.Region { return m.region }

// Get returns the named cluster, or nil.
func (m *Manager) Get(name string) *Cluster { return m.byName[name] }

// Close closes every pool's idle connections. The region stays mapped:
// its owner closes it.
func (m *Manager) Close() {
	for _, c := range m.byName {
		for _, h := range c.Hosts {
			h.Pool.Close()
		}
	}
}

// lbConfig maps a cluster's TOML onto the policy's config; lb.New
// validates it and fills in Envoy's defaults.
func lbConfig(cc *config.Cluster) lb.Config {
	return lb.Config{
		Policy:         cc.LBPolicy,
		PanicThreshold: cc.PanicThreshold,
		RingHash:       lb.RingHashConfig{MinimumRingSize: cc.RingHash.MinimumRingSize, MaximumRingSize: cc.RingHash.MaximumRingSize},
		Maglev:         lb.MaglevConfig{TableSize: cc.Maglev.TableSize},
		LeastRequest:   lb.LeastRequestConfig{ChoiceCount: cc.LeastRequest.ChoiceCount, ActiveRequestBias: cc.LeastRequest.ActiveRequestBias},
		SlowStart: lb.SlowStartConfig{Window: cc.SlowStart.Window.Duration, Aggression: cc.SlowStart.Aggression,
			MinWeightPercent: cc.SlowStart.MinWeightPercent},
	}
}
