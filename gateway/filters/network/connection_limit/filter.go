package connlimit

import (
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Stats are the filter's stats in this worker, named after the Envoy stats
// they will be exported as (connection_limit.<stat_prefix>.<name>).
type Stats struct {
	// ActiveConnections: connection_limit.<stat_prefix>.active_connections
	// (gauge), connections counted against the limit now.
	ActiveConnections atomic.Int64
	// LimitedConnections: connection_limit.<stat_prefix>.limited_connections,
	// connections refused.
	LimitedConnections atomic.Uint64
}

// Factory is a built connection_limit: one counter shared by every
// connection of the filter chains that use it in this worker. It is safe
// for concurrent use.
type Factory struct {
	statPrefix string
	limit      int64 // this worker's share of max_connections
	delay      time.Duration

	stats Stats
}

// StatPrefix returns stat_prefix, for stats names connection_limit.<stat_prefix>.*.
func (f *Factory) StatPrefix() string { return f.statPrefix }

// Limit returns this worker's share of max_connections.
func (f *Factory) Limit() int { return int(f.limit) }

// Stats returns the factory's stats.
func (f *Factory) Stats() *Stats { return &f.stats }

// NewFilter implements netfilter.Factory.
func (f *Factory) NewFilter(cb netfilter.Callbacks) netfilter.Filter {
	return &filter{f: f, cb: cb}
}

// filter counts one connection. OnNewConnection and OnData run on the
// connection's goroutine; OnEvent may run on any (Close is callable from
// any goroutine), hence the atomic flag.
type filter struct {
	f  *Factory
	cb netfilter.Callbacks

	counted atomic.Bool // the connection holds one unit of the limit
}

// netfilter.ReadFilter

// OnNewConnection implements netfilter.ReadFilter: it takes one unit of the
// limit, or refuses the connection (StopIteration without a resume closes
// it), after delay if one is set.
func (l *filter) OnNewConnection() netfilter.Status {
	f := l.f
	if f.stats.ActiveConnections.Add(1) > f.limit {
		f.stats.ActiveConnections.Add(-1)
		f.stats.LimitedConnections.Add(1)
		if f.delay > 0 {
			// Hold the connection without reading it; the connection's
			// goroutine has nothing else to do meanwhile.
			t := time.NewTimer(f.delay)
			<-t.C
		}
		l.cb.Conn().Close()
		return netfilter.StopIteration
	}
	l.counted.Store(true)
	return netfilter.Continue
}

// OnData implements netfilter.ReadFilter: bytes pass unchanged.
func (l *filter) OnData(*buffer.Buffer, bool) netfilter.Status { return netfilter.Continue }

// netfilter.Filter

// OnEvent implements netfilter.Filter: a close gives the unit back.
func (l *filter) OnEvent(ev netfilter.Event) {
	if (ev == netfilter.LocalClose || ev == netfilter.RemoteClose) && l.counted.Swap(false) {
		l.f.stats.ActiveConnections.Add(-1)
	}
}

var (
	_ netfilter.Factory    = (*Factory)(nil)
	_ netfilter.ReadFilter = (*filter)(nil)
)
