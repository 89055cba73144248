package tcpproxy

import (
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/netfilter"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Stats are the filter's counters, totals over every connection the
// factory served in this worker. Each field is named after the Envoy stat it
// will be exported as (tcp.<stat_prefix>.<name>); read them with Load.
type Stats struct {
	// DownstreamCxTotal: tcp.<stat_prefix>.downstream_cx_total, connections
	// handled.
	DownstreamCxTotal *stats.Counter
	// DownstreamCxNoRoute: tcp.<stat_prefix>.downstream_cx_no_route,
	// connections closed because the cluster had no host to pick.
	DownstreamCxNoRoute *stats.Counter
	// DownstreamCxRxBytesTotal: tcp.<stat_prefix>.downstream_cx_rx_bytes_total,
	// bytes read from downstream.
	DownstreamCxRxBytesTotal *stats.Counter
	// DownstreamCxTxBytesTotal: tcp.<stat_prefix>.downstream_cx_tx_bytes_total,
	// bytes written to downstream.
	DownstreamCxTxBytesTotal *stats.Counter
	// IdleTimeout: tcp.<stat_prefix>.idle_timeout, connections closed by
	// idle_timeout.
	IdleTimeout *stats.Counter
	// UpstreamConnectAttemptsExceeded:
	// tcp.<stat_prefix>.upstream_connect_attempts_exceeded, connections
	// closed after max_connect_attempts failed connects.
	UpstreamConnectAttemptsExceeded *stats.Counter
	// UpstreamCxConnectFail: failed connects to upstream hosts (Envoy counts
	// them as cluster.<name>.upstream_cx_connect_fail).
	UpstreamCxConnectFail *stats.Counter
}

// statNames are the tcp_proxy's stats, tcp.<stat_prefix>.<name>, in the
// order of the Stats fields.
var statNames = []string{"downstream_cx_total", "downstream_cx_no_route", "downstream_cx_rx_bytes_total",
	"downstream_cx_tx_bytes_total", "idle_timeout", "upstream_connect_attempts_exceeded", "upstream_cx_connect_fail"}

// newStats resolves the handles of tcp.<prefix>.* in slab (private handles
// when slab is nil).
func newStats(slab *stats.Slab, prefix string) Stats {
	c := func(name string) *stats.Counter { return slab.Counter("tcp." + prefix + "." + name) }
	return Stats{
		DownstreamCxTotal:               c(statNames[0]),
		DownstreamCxNoRoute:             c(statNames[1]),
		DownstreamCxRxBytesTotal:        c(statNames[2]),
		DownstreamCxTxBytesTotal:        c(statNames[3]),
		IdleTimeout:                     c(statNames[4]),
		UpstreamConnectAttemptsExceeded: c(statNames[5]),
		UpstreamCxConnectFail:           c(statNames[6]),
	}
}

// Factory is a built tcp_proxy: immutable, shared by every connection of
// the filter chains that use it, safe for concurrent use (its Stats are
// atomic handles into the worker's stats slab).
type Factory struct {
	statPrefix  string
	targets     []target // cumulative weights; one entry without weighted_clusters
	idleTimeout time.Duration
	attempts    int
	log         *zap.Logger

	stats Stats

	// onEnd, when set, receives each connection's Session after the
	// connection ended; the access log hooks in here.
	onEnd func(*Session)
}

// StatPrefix returns stat_prefix, for stats names tcp.<stat_prefix>.*.
func (f *Factory) StatPrefix() string { return f.statPrefix }

// Stats returns the factory's counters.
func (f *Factory) Stats() *Stats { return &f.stats }

// pick chooses the connection's cluster: the only one, or one drawn by
// weight (as Envoy's weighted_clusters, at random).
func (f *Factory) pick() *target {
	if len(f.targets) == 1 {
		return &f.targets[0]
	}
	n := rand.IntN(f.targets[len(f.targets)-1].cum)
	for i := range f.targets {
		if n < f.targets[i].cum {
			return &f.targets[i]
		}
	}
	return &f.targets[len(f.targets)-1]
}

// NewFilter implements netfilter.Factory.
func (f *Factory) NewFilter(cb netfilter.Callbacks) netfilter.Filter {
	return &filter{f: f}
}

var _ netfilter.Factory = (*Factory)(nil)
