// Package cluster holds a worker's upstream clusters: their hosts, the
// load-balancing policy that picks among them, and each host's connection
// pools (one per routing priority).
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
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
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
	// Hostname is what auto_host_rewrite makes the authority of the
	// host's requests (read-only, shared by them): in a strict_dns or
	// logical_dns cluster the endpoint it was resolved from, as
	// configured ("name:port"), elsewhere the address. It is empty when a
	// strict_dns cluster has several endpoints of the address's port, as
	// the resolved set does not tell which one the address came from.
	Hostname []byte
	// Pool holds the connections of the default priority's requests (and
	// of mirrors); HighPool those of routes with priority = "high". As in
	// Envoy, each priority has its own pool, so each is bounded by its
	// own max_connections and a high-priority request never waits behind
	// default-priority connections.
	Pool, HighPool *pool.Pool
	weight         uint32 // load-balancing weight, >= 1
	// State is the host's shared record: health flags, outlier counters.
	State *hoststate.Host
	// inFlight counts this worker's requests to the host in State (nil
	// without State).
	inFlight *hoststate.Breaker
	// used is set by each pick of an original_dst cluster's host and
	// cleared by its cleanup.
	used atomic.Bool
	// added is when the host joined a cluster that already had hosts (a
	// DNS answer or a resolved set changed); zero for the hosts a cluster
	// is built with, which skip slow start.
	added time.Time

	active atomic.Int64
}

// Begin records the start of a request to h; End its end.
func (h *Host) Begin() {
	h.active.Add(1)
	if h.State != nil {
		h.State.CountRequest()
	}
	if h.inFlight != nil {
		h.inFlight.Acquire()
	}
}

// End records the end of a request started with Begin.
func (h *Host) End() {
	h.active.Add(-1)
	if h.inFlight != nil {
		h.inFlight.Release()
	}
}

// Active returns the number of requests in flight to h.
func (h *Host) Active() int64 { return h.active.Load() }

// PoolOf returns the pool of priority p's requests.
func (h *Host) PoolOf(p hoststate.Priority) *pool.Pool {
	if p == hoststate.PriorityHigh {
		return h.HighPool
	}
	return h.Pool
}

// closePools closes both priorities' pools.
func (h *Host) closePools() {
	h.Pool.Close()
	h.HighPool.Close()
}

// Cluster is a named group of hosts. Its host list is an immutable
// snapshot swapped atomically when a DNS cluster's addresses change, so
// Pick and Hosts are safe for concurrent use with SetHosts.
type Cluster struct {
	Name string
	Cfg  *config.Cluster
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
	// Limits are the circuit-breaker thresholds (global across workers) of
	// the default priority, HighLimits those of priority high.
	Limits, HighLimits Limits

	set    atomic.Pointer[hostSet]
	odst   *originalDst // original_dst clusters only
	region *hoststate.Region
	worker int
	mu     sync.Mutex // serialises SetHosts
}

// Limits are a cluster's circuit-breaker thresholds.
type Limits struct {
	Connections, Pending, Requests, Retries uint64
	// Budget, when set, replaces Retries (Envoy's retry_budget).
	Budget *RetryBudget
}

// RetryBudget bounds the retries in flight to Percent of the requests
// active and pending, and at least Min.
type RetryBudget struct {
	Percent float64
	Min     uint64
}

// newLimits compiles one priority's thresholds.
func newLimits(cb *config.CircuitBreakersConfig) Limits {
	var l Limits
	l.Connections, l.Pending, l.Requests, l.Retries = cb.Limits()
	if rb := cb.RetryBudget; rb != nil {
		l.Budget = &RetryBudget{}
		l.Budget.Percent, l.Budget.Min = rb.Budget()
	}
	return l
}

// LimitsOf returns priority p's thresholds.
func (c *Cluster) LimitsOf(p hoststate.Priority) *Limits {
	if p == hoststate.PriorityHigh {
		return &c.HighLimits
	}
	return &c.Limits
}

// RetryLimit returns how many retries of priority p may be in flight now:
// Retries, or the budget's share of that priority's requests active and
// pending across workers.
func (c *Cluster) RetryLimit(p hoststate.Priority) uint64 {
	l := c.LimitsOf(p)
	if l.Budget == nil {
		return l.Retries
	}
	active := c.Record.PriorityBreaker(p, hoststate.Requests).Count() + c.Record.PriorityBreaker(p, hoststate.Pending).Count()
	return max(l.Budget.Min, uint64(l.Budget.Percent/100*float64(active)))
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
	// PerTryIdleTimeout counts tries failed by per_try_idle_timeout
	// (upstream_rq_per_try_idle_timeout; not in upstream_rq_per_try_timeout,
	// as in Envoy).
	PerTryIdleTimeout *stats.Counter
}

// hostSet is one immutable snapshot of a cluster's hosts with the
// load-balancing policy built over it. It implements lb.Hosts.
type hostSet struct {
	hosts  []*Host
	policy lb.Policy
}

// Address implements lb.Hosts.
func (s *hostSet) Address(i int) string { return s.hosts[i].Address }

// Weight implements lb.Hosts: the endpoint's configured weight, 1 by
// default.
func (s *hostSet) Weight(i int) uint32 { return s.hosts[i].weight }

// HealthyLen implements lb.Hosts: the hosts neither failed by active
// health checking nor ejected by outlier detection.
func (s *hostSet) HealthyLen() int {
	n := 0
	for _, h := range s.hosts {
		if h.State.Healthy() {
			n++
		}
	}
	return n
}

// Active implements lb.Hosts.
func (s *hostSet) Active(i int) int64 { return s.hosts[i].Active() }

// Since implements lb.Hosts: when the host joined the cluster (zero for
// the hosts the cluster was built with, which skip slow start) or active
// health checking last brought it back, whichever is later.
func (s *hostSet) Since(i int) time.Time {
	h := s.hosts[i]
	since := h.added
	if h.State != nil {
		if t := h.State.HealthySince(); t.After(since) {
			since = t
		}
	}
	return since
}

// Len implements lb.Hosts.
func (s *hostSet) Len() int { return len(s.hosts) }

// Healthy implements lb.Hosts: one atomic load of the host's shared flags.
func (s *hostSet) Healthy(i int) bool { return s.hosts[i].State.Healthy() }

// Hosts returns the cluster's current hosts. The slice must not be
// modified; it stays valid (though possibly stale) after a SetHosts.
func (c *Cluster) Hosts() []*Host { return c.set.Load().hosts }

// HealthyLen is the number of the current hosts that may take traffic.
func (c *Cluster) HealthyLen() int { return c.set.Load().HealthyLen() }

// Pick chooses a host by the cluster's load-balancing policy.
// r carries the request's hash for ring hash and maglev; nil for none.
// An original_dst cluster picks r's original destination instead.
func (c *Cluster) Pick(r *lb.Request) (*Host, error) {
	if c.odst != nil {
		return c.odst.pick(r)
	}
	s := c.set.Load()
	i := s.policy.Pick(r)
	if i < 0 || i >= len(s.hosts) {
		return nil, fmt.Errorf("cluster %q: %w", c.Name, ErrNoHealthyUpstream)
	}
	return s.hosts[i], nil
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
		c := &Cluster{Name: cc.Name, Cfg: cc, Stats: slab.Cluster(cc.Name), region: m.region, worker: sh.Worker}
		if err := m.shared(c, slab, sh.Worker); err != nil {
			return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
		}
		if IsOriginalDst(cc) {
			c.odst = newOriginalDst(c)
			c.set.Store(&hostSet{})
			m.byName[cc.Name] = c
			continue
		}
		if _, err := lb.New(lbConfig(cc)); err != nil {
			return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
		}
		addrs := cc.Endpoints
		if IsDNS(cc) {
			addrs = resolvedHosts(cc.Name)
		}
		if err := c.SetHosts(addrs); err != nil {
			return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
		}
		m.byName[cc.Name] = c
	}
	register(m)
	return m, nil
}

// IsDNS reports whether cc is a strict_dns or logical_dns cluster, whose
// hosts the supervisor resolves and pushes (SetResolvedHosts).
func IsDNS(cc *config.Cluster) bool { return cc.Type == "strict_dns" || cc.Type == "logical_dns" }

// IsOriginalDst reports whether cc is an original_dst cluster, whose
// hosts are its connections' original destinations.
func IsOriginalDst(cc *config.Cluster) bool { return cc.Type == "original_dst" }

// SetHosts makes addrs ("host:port") the cluster's hosts: hosts already
// present keep their pool and counters, new ones get a pool and their
// shared record (added when the supervisor has not), and the pools of
// removed hosts close their connections as they become idle. Requests
// pick from either the old or the new set while it runs, never a mix.
// SetHosts calls are serialised.
func (c *Cluster) SetHosts(addrs []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	policy, err := lb.New(lbConfig(c.Cfg))
	if err != nil {
		return err
	}
	old := map[string]*Host{}
	if s := c.set.Load(); s != nil {
		for _, h := range s.hosts {
			old[h.Address] = h
		}
	}
	// Hosts joining a cluster that has hosts start their slow start now;
	// a cluster's first hosts have nothing to ramp up from.
	var added time.Time
	if len(old) > 0 {
		added = time.Now()
	}
	ns := &hostSet{policy: policy, hosts: make([]*Host, 0, len(addrs))}
	for _, ep := range addrs {
		if h, ok := old[ep]; ok {
			ns.hosts = append(ns.hosts, h)
			delete(old, ep)
			continue
		}
		h, err := c.newHost(ep, true)
		if err != nil {
			for _, n := range ns.hosts {
				if _, kept := old[n.Address]; !kept {
					n.closePools()
				}
			}
			return err
		}
		h.added = added
		ns.hosts = append(ns.hosts, h)
	}
	policy.Update(ns)
	c.set.Store(ns)
	if c.Outlier != nil {
		c.Outlier.SetHosts(len(ns.hosts))
	}
	c.Stats.MembershipTotal.Set(int64(len(ns.hosts)))
	c.Stats.MembershipHealthy.Set(int64(len(ns.hosts)))
	for _, h := range old {
		h.closePools()
	}
	return nil
}

// newHost builds host ep of c: its pools (one per priority) and its record, in the shared
// region or (not shared) private to the worker.
func (c *Cluster) newHost(ep string, shared bool) (*Host, error) {
	cc := c.Cfg
	opts := pool.Options{
		Address:        ep,
		ConnectTimeout: cc.ConnectTimeout.Duration,
		MaxIdle:        cc.MaxIdleConnections,
		IdleTimeout:    cc.IdleTimeout.Duration,
		Stats:          c.Stats,
		// max_connection_duration: connections older than this are not
		// reused.
		MaxConnectionDuration: cc.MaxConnectionDuration.Duration,
	}
	if cc.TLS != nil {
		host, _, _ := net.SplitHostPort(ep)
		tc, err := tlsconn.Client(cc.TLS, host)
		if err != nil {
			return nil, fmt.Errorf("cluster: %q: tls: %w", c.Name, err)
		}
		opts.TLS = tc
		if cc.TLS.AutoSANValidation {
			opts.TLS = tlsconn.WithServerName(tc, tc.ServerName, true)
		}
		if cc.TLS.AutoSNI {
			validate := cc.TLS.AutoSANValidation
			opts.ServerNameTLS = func(name string) *tls.Config { return tlsconn.WithServerName(tc, name, validate) }
		}
	}
	opts.Overflow = c.Overflow.Cx
	h := &Host{Address: ep, Hostname: slices.Clip([]byte(hostname(cc, ep))),
		Pool: c.newPool(opts, hoststate.PriorityDefault), HighPool: c.newPool(opts, hoststate.PriorityHigh), weight: 1}
	if !shared {
		h.State = privateHostState()
		return h, nil
	}
	st, err := hostState(c.region, cc, ep)
	if err != nil {
		return nil, err
	}
	inFlight := c.region.HostActive(st, c.worker)
	h.State, h.inFlight, h.weight = st, &inFlight, endpointWeight(cc, ep)
	return h, nil
}

// hostname returns the Hostname of host ep (an address) of cc.
func hostname(cc *config.Cluster, ep string) string {
	if !IsDNS(cc) {
		return ep
	}
	if len(cc.Endpoints) == 1 {
		return cc.Endpoints[0]
	}
	_, port, _ := net.SplitHostPort(ep)
	name := ""
	for _, e := range cc.Endpoints {
		if _, p, _ := net.SplitHostPort(e); p == port {
			if name != "" {
				return ""
			}
			name = e
		}
	}
	return name
}

// newPool returns a pool for priority p's connections: opts with p's
// max_connections breaker (global across workers) and limit.
func (c *Cluster) newPool(opts pool.Options, p hoststate.Priority) *pool.Pool {
	cb := c.Record.PriorityBreaker(p, hoststate.Connections)
	opts.Connections = &cb
	opts.MaxConnections = c.LimitsOf(p).Connections
	return pool.New(opts)
}

// endpointWeight is the configured weight of a static cluster's endpoint
// ep (endpoint_weights), else 1.
func endpointWeight(cc *config.Cluster, ep string) uint32 {
	for i, e := range cc.Endpoints {
		if e == ep && i < len(cc.EndpointWeights) && cc.EndpointWeights[i] > 0 {
			return cc.EndpointWeights[i]
		}
	}
	return 1
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
	c.Limits = newLimits(&cc.CircuitBreakers)
	c.HighLimits = newLimits(cc.CircuitBreakers.Thresholds())
	p := stats.ClusterName(c.Name)
	c.Overflow = OverflowStats{
		RqPending:         slab.Counter(p + "upstream_rq_pending_overflow"),
		Cx:                slab.Counter(p + "upstream_cx_overflow"),
		RqRetry:           slab.Counter(p + "upstream_rq_retry_overflow"),
		Retry:             slab.Counter(p + "upstream_rq_retry"),
		RetryOK:           slab.Counter(p + "upstream_rq_retry_success"),
		PerTryTimeout:     slab.Counter(p + "upstream_rq_per_try_timeout"),
		PerTryIdleTimeout: slab.Counter(p + "upstream_rq_per_try_idle_timeout"),
	}
	return nil
}

// hostState returns the shared record of endpoint ep of cc, adding it when
// the supervisor has not.
func hostState(region *hoststate.Region, cc *config.Cluster, ep string) (*hoststate.Host, error) {
	if h := region.Host(cc.Name, ep); h != nil {
		return h, nil
	}
	var flags uint64
	if len(cc.HealthChecks) > 0 {
		flags = hoststate.FlagFailedActiveHC | hoststate.FlagPendingActiveHC
	}
	h, err := region.AddHost(cc.Name, ep, flags)
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
	unregister(m)
	for _, c := range m.byName {
		if c.odst != nil {
			c.odst.close()
		}
		for _, h := range c.Hosts() {
			h.closePools()
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
