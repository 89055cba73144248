package supervisor

import (
	"context"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// statsdRun is the running statsd sink; owned by the event loop.
type statsdRun struct {
	cfg    config.Statsd
	cancel context.CancelFunc
	done   chan struct{}
}

// startStatsd starts the statsd sink of c, if it has an address, pushing
// the aggregated snapshot. base, when not nil, is subtracted from the
// counters: a supervisor taking over from another one pushes only what
// happened since, the old one having pushed the rest. Called by the loop.
func (s *Supervisor) startStatsd(c config.Statsd, base stats.Snapshot) {
	if c.Address == "" {
		return
	}
	snapshot := s.stats.snapshot
	if base != nil {
		snapshot = func() stats.Snapshot { return subtract(s.stats.snapshot(), base) }
	}
	sink, err := stats.NewStatsd(c.Address, c.Prefix, c.FlushInterval.Duration, snapshot)
	if err != nil {
		s.log.Error("statsd sink unavailable", zap.String("address", c.Address), zap.Error(err))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &statsdRun{cfg: c, cancel: cancel, done: make(chan struct{})}
	s.statsd = r
	go func() {
		defer close(r.done)
		defer sink.Close()
		sink.Run(ctx)
	}()
	s.log.Info("statsd sink", zap.String("address", c.Address), zap.Duration("flush_interval", c.FlushInterval.Duration))
}

// stopStatsd stops the statsd sink after one last flush. Called by the
// loop.
func (s *Supervisor) stopStatsd() {
	if r := s.statsd; r != nil {
		s.statsd = nil
		r.cancel()
		<-r.done
	}
}

// restartStatsd applies a reloaded [statsd] table. Called by the loop.
func (s *Supervisor) restartStatsd(c config.Statsd) {
	if s.statsd != nil && s.statsd.cfg == c || s.statsd == nil && c.Address == "" {
		return
	}
	s.stopStatsd()
	// The old sink pushed everything up to now in its last flush.
	s.startStatsd(c, s.stats.snapshot())
}

// subtract returns snap with base's counter values taken off (a counter
// below its base, after a reset, is left as is).
func subtract(snap, base stats.Snapshot) stats.Snapshot {
	for i := range snap {
		if snap[i].Def.Kind != stats.KindCounter {
			continue
		}
		if b, ok := base.Get(snap[i].Def.Name); ok && snap[i].Counter >= b.Counter {
			snap[i].Counter -= b.Counter
		}
	}
	return snap
}
