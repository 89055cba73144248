package cluster

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/lb"
)

// OriginalDstHeader is the request header an original_dst cluster with
// use_http_header takes its destination from ("ip:port"), Envoy's.
const OriginalDstHeader = "x-envoy-original-dst-host"

// originalDst is the host set of an original_dst cluster (Envoy's
// ORIGINAL_DST with lb_policy CLUSTER_PROVIDED): a host per original
// destination, made when a connection or request first goes there and
// removed once it went unused for a cleanup interval.
//
// Its hosts are the worker's own: they get no record in the shared
// host-state region, whose slots are never freed (nothing health-checks
// or ejects them), and a private record instead.
type originalDst struct {
	c         *Cluster
	interval  time.Duration
	useHeader bool

	mu     sync.RWMutex
	hosts  map[netip.AddrPort]*Host // guarded by mu
	timer  *time.Timer              // pending cleanup; nil without hosts
	closed bool
}

func newOriginalDst(c *Cluster) *originalDst {
	return &originalDst{c: c, interval: c.Cfg.CleanupInterval.Duration, useHeader: c.Cfg.UseHTTPHeader,
		hosts: map[netip.AddrPort]*Host{}}
}

// pick returns the host of r's destination, made on first use.
func (o *originalDst) pick(r *lb.Request) (*Host, error) {
	dst, err := o.destination(r)
	if err != nil {
		return nil, err
	}
	o.mu.RLock()
	h := o.hosts[dst]
	o.mu.RUnlock()
	if h == nil {
		if h, err = o.add(dst); err != nil {
			return nil, err
		}
	}
	h.used.Store(true)
	return h, nil
}

// destination is where r goes: its x-envoy-original-dst-host header with
// use_http_header (a value that is not ip:port fails the request, as in
// Envoy), else the downstream connection's original destination. A
// connection whose destination no listener filter restored has none: it
// would loop back to sluice.
func (o *originalDst) destination(r *lb.Request) (netip.AddrPort, error) {
	if r == nil {
		return netip.AddrPort{}, fmt.Errorf("cluster %q: no original destination: %w", o.c.Name, ErrNoHealthyUpstream)
	}
	if o.useHeader && r.Header != nil {
		if v := r.Header.Get(OriginalDstHeader); v != nil {
			a, err := netip.ParseAddrPort(string(v))
			if err != nil || a.Port() == 0 {
				return netip.AddrPort{}, fmt.Errorf("cluster %q: %s %q is not ip:port: %w", o.c.Name, OriginalDstHeader, v, ErrNoHealthyUpstream)
			}
			return unmap(a), nil
		}
	}
	if !r.OriginalDst.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("cluster %q: no original destination: %w", o.c.Name, ErrNoHealthyUpstream)
	}
	return unmap(r.OriginalDst), nil
}

// add makes the host of dst unless another pick just did.
func (o *originalDst) add(dst netip.AddrPort) (*Host, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("cluster %q: closed: %w", o.c.Name, ErrNoHealthyUpstream)
	}
	if h := o.hosts[dst]; h != nil {
		return h, nil
	}
	h, err := o.c.newHost(dst.String(), false)
	if err != nil {
		return nil, err
	}
	o.hosts[dst] = h
	o.c.Stats.MembershipTotal.Set(int64(len(o.hosts)))
	o.c.Stats.MembershipHealthy.Set(int64(len(o.hosts)))
	if o.timer == nil {
		o.timer = time.AfterFunc(o.interval, o.cleanup)
	}
	return h, nil
}

// cleanup removes the hosts no pick used since the previous cleanup and
// that have nothing in flight (a long tcp_proxy connection keeps its
// host), and closes their pools. It runs every interval while there are
// hosts.
func (o *originalDst) cleanup() {
	o.mu.Lock()
	var gone []*Host
	for dst, h := range o.hosts {
		if h.used.Swap(false) || h.Active() > 0 {
			continue
		}
		delete(o.hosts, dst)
		gone = append(gone, h)
	}
	n := len(o.hosts)
	if n > 0 && !o.closed {
		o.timer.Reset(o.interval)
	} else {
		o.timer = nil
	}
	o.mu.Unlock()
	o.c.Stats.MembershipTotal.Set(int64(n))
	o.c.Stats.MembershipHealthy.Set(int64(n))
	for _, h := range gone {
		h.closePools()
	}
}

// hostCount returns the number of hosts (for tests).
func (o *originalDst) hostCount() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.hosts)
}

// close stops the cleanups and closes every host's pool; picks fail
// afterwards.
func (o *originalDst) close() {
	o.mu.Lock()
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	hosts := o.hosts
	o.hosts = map[netip.AddrPort]*Host{}
	o.mu.Unlock()
	for _, h := range hosts {
		h.closePools()
	}
}

// privateHostState is the record of a host kept out of the shared region.
func privateHostState() *hoststate.Host { return new(hoststate.Host) }

// unmap turns an IPv4-mapped IPv6 address into its IPv4 form.
func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
