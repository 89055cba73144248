package supervisor

import (
	"context"
	"slices"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// statsdRun is the running statsd sink; owned by the event loop.
type statsdRun struct {
	cfg    config.Statsd
	hosts  []string // the tcp_cluster_name cluster's endpoints
	sink   *stats.Statsd
	cancel context.CancelFunc
	done   chan struct{}
}

// startStatsd starts the statsd sink of c, if it has an address, pushing
// the aggregated snapshot. base, when not nil, primes the sink (see
// stats.Statsd.Prime): a sink taking over from another one pushes only
// what happened since, counters and histograms alike, the old one having
// pushed the rest. Called by the loop.
func (s *Supervisor) startStatsd(cfg *config.Config, base stats.Snapshot) {
	c := cfg.Statsd
	if c.Address == "" && c.TCPClusterName == "" {
		return
	}
	snapshot := s.snapshot
	var sink *stats.Statsd
	hosts := statsdHosts(cfg)
	if c.TCPClusterName != "" {
		sink = stats.NewStatsdTCP(hosts, c.Prefix, c.FlushInterval.Duration, snapshot)
	} else {
		var err error
		if sink, err = stats.NewStatsd(c.Address, c.Prefix, c.FlushInterval.Duration, snapshot); err != nil {
			s.log.Error("statsd sink unavailable", zap.String("address", c.Address), zap.Error(err))
			return
		}
		if err := sink.Connect(); err != nil {
			// Until it resolves, each flush tries again and keeps its deltas.
			s.log.Warn("statsd server not reachable yet, retrying at every flush", zap.String("address", c.Address), zap.Error(err))
		}
	}
	if base != nil {
		sink.Prime(base)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &statsdRun{cfg: c, hosts: hosts, sink: sink, cancel: cancel, done: make(chan struct{})}
	s.statsd = r
	go func() {
		defer close(r.done)
		defer sink.Close()
		sink.Run(ctx)
	}()
	s.log.Info("statsd sink", zap.String("address", c.Address), zap.String("tcp_cluster_name", c.TCPClusterName),
		zap.Duration("flush_interval", c.FlushInterval.Duration))
}

// stopStatsd stops the statsd sink after one last flush and returns what
// it sent (nil if no sink ran). Called by the loop.
func (s *Supervisor) stopStatsd() stats.Snapshot {
	r := s.statsd
	if r == nil {
		return nil
	}
	s.statsd = nil
	r.cancel()
	<-r.done
	return r.sink.Sent()
}

// restartStatsd applies a reloaded [statsd] table (or a changed
// tcp_cluster_name cluster). Called by the loop.
func (s *Supervisor) restartStatsd(cfg *config.Config) {
	c := cfg.Statsd
	if s.statsd != nil && s.statsd.cfg == c && slices.Equal(s.statsd.hosts, statsdHosts(cfg)) ||
		s.statsd == nil && c.Address == "" && c.TCPClusterName == "" {
		return
	}
	// The old sink pushed everything up to its last flush; the new one
	// goes on from there. A sink new to the config starts from now.
	base := s.stopStatsd()
	if base == nil {
		base = s.stats.snapshot()
	}
	s.startStatsd(cfg, base)
}

// statsdHosts returns the endpoints of cfg's statsd tcp_cluster_name
// cluster (validation made sure it exists with static endpoints), or nil.
func statsdHosts(cfg *config.Config) []string {
	if name := cfg.Statsd.TCPClusterName; name != "" {
		if cl := cfg.Cluster(name); cl != nil {
			return cl.Endpoints
		}
	}
	return nil
}
