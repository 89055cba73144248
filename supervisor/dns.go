package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/dns"
	"github.com/sluice-proxy/sluice/hotrestart"
)

// DNS clusters, as the supervisor runs them.
//
// Each strict_dns or logical_dns cluster is resolved here, once per
// instance (never per worker): the first time synchronously while its
// config is applied, so that its workers start with hosts, then by a
// dns.WatchFrom goroutine. Each change goes through the event loop: the
// host-state region gets the new keys (SetHosts), the health checker and
// the outlier detector are re-applied over them, and every worker gets a
// TypeClusterHosts message; workers started later get the sets in their
// Hello. A watch is kept across reloads while its cluster's resolution
// settings are unchanged.

// dnsFirstWait bounds the synchronous first resolution of a DNS cluster.
const dnsFirstWait = 5 * time.Second

// resolvConf is where the default resolvers come from.
const resolvConf = "/etc/resolv.conf"

// dnsRun is one running watch.
type dnsRun struct {
	key    string // the resolution settings it was started with
	cancel context.CancelFunc
}

// dnsKey identifies a DNS cluster's resolution settings.
func dnsKey(cc *config.Cluster) string {
	return fmt.Sprintf("%s|%s|%s|%v|%t|%s", cc.Name, cc.Type, strings.Join(cc.Endpoints, ","),
		cc.DNSRefreshRate.Duration, cc.RespectDNSTTL, strings.Join(cc.DNSResolvers, ","))
}

// endpoints returns the addresses of cc: its endpoints if static, the
// last resolved set if a DNS cluster (none before the first resolution).
func (hs *hostState) endpoints(cc *config.Cluster) []string {
	if cc.Type == dns.StrictDNS || cc.Type == dns.LogicalDNS {
		return hs.resolved[cc.Name]
	}
	return cc.Endpoints
}

// syncDNS starts a watch for each DNS cluster of cfg that has none with
// its settings, resolving it first (bounded by dnsFirstWait), and stops
// the watches cfg no longer has. Called by the loop.
func (hs *hostState) syncDNS(cfg *config.Config) {
	if hs.dns == nil {
		hs.dns = map[string]*dnsRun{}
		hs.resolved = map[string][]string{}
	}
	want := map[string]bool{}
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		if cc.Type != dns.StrictDNS && cc.Type != dns.LogicalDNS {
			continue
		}
		want[cc.Name] = true
		key := dnsKey(cc)
		if r := hs.dns[cc.Name]; r != nil {
			if r.key == key {
				continue
			}
			r.cancel()
		}
		hs.dns[cc.Name] = hs.startDNS(cc, key)
	}
	for name, r := range hs.dns {
		if !want[name] {
			r.cancel()
			delete(hs.dns, name)
			delete(hs.resolved, name)
		}
	}
}

// startDNS resolves cc once and starts its watch.
func (hs *hostState) startDNS(cc *config.Cluster, key string) *dnsRun {
	log := hs.log.With(zap.String("cluster", cc.Name))
	servers := slices.Clone(cc.DNSResolvers)
	if len(servers) == 0 {
		var err error
		if servers, err = dns.ReadResolvConf(resolvConf); err != nil {
			log.Warn("cannot read resolvers; using 127.0.0.1:53", zap.Error(err))
			servers = []string{"127.0.0.1:53"}
		}
	}
	res := &dns.Resolver{Servers: servers}
	spec := cc.DNSSpec()
	ctx, cancel := context.WithCancel(context.Background())
	first, fcancel := context.WithTimeout(ctx, dnsFirstWait)
	hosts, next, err := dns.Resolve(first, spec, res)
	fcancel()
	if err != nil {
		log.Warn("DNS cluster not resolved yet", zap.Error(err))
		delete(hs.resolved, cc.Name)
	} else {
		hs.resolved[cc.Name] = hosts
		log.Info("DNS cluster resolved", zap.Strings("hosts", hosts))
	}
	call := hs.call
	update := func(h []string) { call(func() { hs.dnsUpdate(cc.Name, key, h) }) }
	onError := func(err error) { log.Warn("DNS resolution failed; keeping the last hosts", zap.Error(err)) }
	go func() {
		if err := dns.WatchFrom(ctx, spec, res, hosts, next, update, onError); err != nil {
			log.Error("cannot watch DNS cluster", zap.Error(err))
		}
	}()
	return &dnsRun{key: key, cancel: cancel}
}

// dnsUpdate makes hosts the set of the DNS cluster name, if its watch with
// settings key still runs: the region, health checks and outlier detection
// follow, and every worker is told. Called by the loop.
func (hs *hostState) dnsUpdate(name, key string, hosts []string) {
	if r := hs.dns[name]; hs.stopped || r == nil || r.key != key || hs.cfg == nil {
		return
	}
	hs.resolved[name] = hosts
	hs.log.Info("DNS cluster hosts changed", zap.String("cluster", name), zap.Strings("hosts", hosts))
	hs.apply(hs.cfg)
	if hs.send != nil {
		hs.send(hotrestart.ClusterHosts{Cluster: name, Hosts: hosts}.Message())
	}
	if hs.changed != nil {
		hs.changed()
	}
}

// helloHosts is the DNS part of a Hello for a worker of cfg.
func (hs *hostState) helloHosts(cfg *config.Config) map[string][]string {
	var out map[string][]string
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		if h, ok := hs.resolved[cc.Name]; ok && (cc.Type == dns.StrictDNS || cc.Type == dns.LogicalDNS) {
			if out == nil {
				out = map[string][]string{}
			}
			out[cc.Name] = slices.Clone(h)
		}
	}
	return out
}

// stopDNS stops every watch.
func (hs *hostState) stopDNS() {
	for name, r := range hs.dns {
		r.cancel()
		delete(hs.dns, name)
	}
}
