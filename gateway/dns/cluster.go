package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Cluster types.
const (
	// StrictDNS uses every address of every endpoint.
	StrictDNS = "strict_dns"
	// LogicalDNS uses the first address of its single endpoint.
	LogicalDNS = "logical_dns"
)

// DefaultRefreshRate is Envoy's dns_refresh_rate.
const DefaultRefreshRate = 5 * time.Second

// MinRefresh bounds how often a name is re-resolved when respect_dns_ttl
// meets a TTL of 0.
const MinRefresh = time.Second

// Spec is one DNS cluster.
type Spec struct {
	Name string
	// Type is StrictDNS or LogicalDNS.
	Type string
	// Endpoints are "host:port"; LogicalDNS takes exactly one.
	Endpoints []string
	// RefreshRate is the re-resolution period; 0 means 5s.
	RefreshRate time.Duration
	// RespectTTL re-resolves when the records' smallest TTL expires
	// instead (never more often than MinRefresh).
	RespectTTL bool
}

// Validate checks s.
func (s *Spec) Validate() error {
	switch {
	case s.Type != StrictDNS && s.Type != LogicalDNS:
		return fmt.Errorf("dns: cluster %q: type %q is not strict_dns or logical_dns", s.Name, s.Type)
	case s.Type == LogicalDNS && len(s.Endpoints) != 1:
		return fmt.Errorf("dns: cluster %q: logical_dns takes exactly one endpoint", s.Name)
	case len(s.Endpoints) == 0:
		return fmt.Errorf("dns: cluster %q: no endpoints", s.Name)
	case s.RefreshRate < 0:
		return fmt.Errorf("dns: cluster %q: dns_refresh_rate must be > 0", s.Name)
	}
	for _, e := range s.Endpoints {
		if _, _, err := net.SplitHostPort(e); err != nil {
			return fmt.Errorf("dns: cluster %q: endpoint %q: %w", s.Name, e, err)
		}
	}
	return nil
}

// Resolve resolves s's endpoints once and returns its host set
// ("ip:port", sorted and deduplicated for strict_dns) and when to resolve
// again. A strict_dns endpoint that fails to resolve is left out unless
// all fail; then the error is returned.
func Resolve(ctx context.Context, s *Spec, l Lookuper) ([]string, time.Duration, error) {
	var (
		hosts  []string
		minTTL time.Duration = -1
		errs   []error
	)
	for _, e := range s.Endpoints {
		host, port, _ := net.SplitHostPort(e)
		addrs, ttl, err := l.Lookup(ctx, host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if minTTL < 0 || ttl < minTTL {
			minTTL = ttl
		}
		p, _ := strconv.Atoi(port)
		for _, a := range addrs {
			hosts = append(hosts, netip.AddrPortFrom(a, uint16(p)).String())
			if s.Type == LogicalDNS {
				break
			}
		}
	}
	next := s.RefreshRate
	if next == 0 {
		next = DefaultRefreshRate
	}
	if len(hosts) == 0 {
		return nil, next, fmt.Errorf("dns: cluster %q: %w", s.Name, errors.Join(errs...))
	}
	if s.RespectTTL && minTTL >= 0 {
		next = max(minTTL, MinRefresh)
	}
	if s.Type == StrictDNS {
		slices.Sort(hosts)
		hosts = slices.Compact(hosts)
	}
	return hosts, next, nil
}

// Watch resolves s now and then again at each refresh until ctx is done,
// calling update with the host set the first time and whenever it
// changes. A failed resolution keeps the last host set (as Envoy does) and
// is reported to onError, if not nil. update and onError run on Watch's
// goroutine.
func Watch(ctx context.Context, s *Spec, l Lookuper, update func(hosts []string), onError func(error)) error {
	return watch(ctx, s, l, nil, true, 0, update, onError)
}

// WatchFrom is Watch for a caller that already resolved s once (Resolve)
// and got hosts and next: it waits next, then re-resolves at each refresh,
// calling update only when the set differs from the last one.
func WatchFrom(ctx context.Context, s *Spec, l Lookuper, hosts []string, next time.Duration,
	update func(hosts []string), onError func(error)) error {
	return watch(ctx, s, l, slices.Clone(hosts), false, next, update, onError)
}

func watch(ctx context.Context, s *Spec, l Lookuper, last []string, first bool, wait time.Duration,
	update func(hosts []string), onError func(error)) error {
	if err := s.Validate(); err != nil {
		return err
	}
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		hosts, next, err := Resolve(ctx, s, l)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if onError != nil {
				onError(err)
			}
		} else if first || !slices.Equal(hosts, last) {
			first, last = false, hosts
			update(slices.Clone(hosts))
		}
		wait = next
	}
}
