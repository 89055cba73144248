// Package cluster holds a worker's upstream clusters: their hosts, the
// load-balancing policy that picks among them, and each host's connection
// pool.
//
// A Manager is built once per config generation and is then read-only: its
// methods are safe for concurrent use. Host runtime state (active requests)
// is updated atomically.
package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/lb"
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

	policy lb.Policy
}

// Address implements lb.Hosts.
func (c *Cluster) Address(i int) string { return c.Hosts[i].Address }

// Weight implements lb.Hosts. Endpoints carry no weight yet: all are 1.
func (c *Cluster) Weight(int) uint32 { return 1 }

// HealthyLen implements lb.Hosts.
func (c *Cluster) HealthyLen() int { return len(c.Hosts) }

// Active implements lb.Hosts.
func (c *Cluster) Active(i int) int64 { return c.Hosts[i].Active() }

// Since implements lb.Hosts: the zero time for the hosts a cluster starts
// with, so that they skip slow start, as in Envoy.
func (c *Cluster) Since(int) time.Time { return time.Time{} }

// Len implements lb.Hosts.
func (c *Cluster) Len() int { return len(c.Hosts) }

// Healthy implements lb.Hosts. Every static host is healthy until active
// health checking exists.
func (c *Cluster) Healthy(int) bool { return true }

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
}

// NewManager builds the clusters of cfg. It opens no connection.
func NewManager(cfg *config.Config, slab *stats.Slab) (*Manager, error) {
	m := &Manager{byName: make(map[string]*Cluster, len(cfg.Clusters))}
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		policy, err := lb.New(lbConfig(cc))
		if err != nil {
			return nil, cfg.TableError(fmt.Sprintf("cluster[%d]", i), err)
		}
		c := &Cluster{Name: cc.Name, Cfg: cc, policy: policy, Stats: slab.Cluster(cc.Name)}
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
			c.Hosts = append(c.Hosts, &Host{Address: ep, Pool: pool.New(opts)})
		}
		policy.Update(c)
		m.byName[cc.Name] = c
	}
	return m, nil
}

// Get returns the named cluster, or nil.
func (m *Manager) Get(name string) *Cluster { return m.byName[name] }

// Close closes every pool's idle connections.
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
