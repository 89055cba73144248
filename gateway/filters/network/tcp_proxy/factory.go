package tcpproxy

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Stats are the filter's counters, totals over every connection the
// factory served in this worker. Each field is named after the Envoy stat it
// will be exported as (tcp.<stat_prefix>.<name>); read them with Load.
type Stats struct {
	// DownstreamCxTotal: tcp.<stat_prefix>.downstream_cx_total, connections
	// handled.
	DownstreamCxTotal atomic.Uint64
	// DownstreamCxNoRoute: tcp.<stat_prefix>.downstream_cx_no_route,
	// connections closed because the cluster had no host to pick.
	DownstreamCxNoRoute atomic.Uint64
	// DownstreamCxRxBytesTotal: tcp.<stat_prefix>.downstream_cx_rx_bytes_total,
	// bytes read from downstream.
	DownstreamCxRxBytesTotal atomic.Uint64
	// DownstreamCxTxBytesTotal: tcp.<stat_prefix>.downstream_cx_tx_bytes_total,
	// bytes written to downstream.
	DownstreamCxTxBytesTotal atomic.Uint64
	// IdleTimeout: tcp.<stat_prefix>.idle_timeout, connections closed by
	// idle_timeout.
	IdleTimeout atomic.Uint64
	// UpstreamConnectAttemptsExceeded:
	// tcp.<stat_prefix>.upstream_connect_attempts_exceeded, connections
	// closed after max_connect_attempts failed connects.
	UpstreamConnectAttemptsExceeded atomic.Uint64
	// UpstreamCxConnectFail: failed connects to upstream hosts (Envoy counts
	// them as cluster.<name>.upstream_cx_connect_fail).
	UpstreamCxConnectFail atomic.Uint64
}

// Factory is a built tcp_proxy: immutable, shared by every connection of
// the filter chains that use it, safe for concurrent use (its Stats are
// updated atomically).
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
