package supervisor

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/hotrestart"
)

// Plugins: the supervisor runs every [[plugin]] with plugin.Supervise (which
// restarts it when it exits) and tells workers where each runs: in the
// Hello, and with a TypePluginReattach message to every worker of the
// generations using it whenever it is (re)started. A reload keeps the
// process of a plugin whose config is Equal; a changed or new one starts a
// new process, used by the new generation only; a process no generation
// uses any more (its generation drained) is stopped. A new supervisor of
// an upgrade starts its own plugin processes before its workers; the old
// supervisor's stop when it exits.

// pluginStartWait bounds how long a starting generation waits for its new
// plugins' first launch before its workers start (they attach later if
// the plugin comes up later).
const pluginStartWait = 10 * time.Second

// pluginRun is one supervised plugin process. cfg, cancel, done and first
// are immutable; mu guards ra.
type pluginRun struct {
	cfg    plugin.Config
	cancel context.CancelFunc
	done   chan struct{} // closed when Supervise returned
	first  chan struct{} // closed at the first launch
	once   sync.Once

	mu sync.Mutex
	ra json.RawMessage // the latest process's Reattach, JSON
}

// reattach returns the latest Reattach info, nil before the first launch.
func (r *pluginRun) reattach() json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ra
}

// startPlugins returns the plugin runs of cfg: those of prev whose config is
// Equal, and new ones for the others, whose processes it starts; started
// lists the new ones, for waitPlugins. Called by the loop, or before it
// starts.
func (s *Supervisor) startPlugins(cfg *config.Config, prev map[string]*pluginRun) (runs map[string]*pluginRun, started []*pluginRun) {
	runs = make(map[string]*pluginRun, len(cfg.Plugins))
	for i := range cfg.Plugins {
		pc := cfg.Plugins[i]
		if old := prev[pc.Name]; old != nil && old.cfg.Equal(&pc) {
			runs[pc.Name] = old
			continue
		}
		r := &pluginRun{cfg: pc, done: make(chan struct{}), first: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		s.pluginRuns[r] = struct{}{}
		go func() {
			defer close(r.done)
			plugin.Supervise(ctx, pc, s.log, func(ra plugin.Reattach) { s.pluginStarted(r, ra) })
		}()
		runs[pc.Name] = r
		started = append(started, r)
	}
	return runs, started
}

// waitPlugins waits for the first launch of the plugins started, up to
// pluginStartWait: workers that start before a plugin does attach to it
// later. It runs on a goroutine of its own during a reload (the loop goes
// on answering meanwhile), or before the loop starts.
func (s *Supervisor) waitPlugins(started []*pluginRun) {
	if len(started) == 0 {
		return
	}
	deadline := time.NewTimer(pluginStartWait)
	defer deadline.Stop()
	for _, r := range started {
		select {
		case <-r.first:
		case <-deadline.C:
			s.log.Warn("plugin not started yet; workers attach once it is", zap.String("plugin", r.cfg.Name))
			return
		}
	}
}

// pluginStarted records a new process of r and tells the workers that use
// it. Called on r's Supervise goroutine.
func (s *Supervisor) pluginStarted(r *pluginRun, ra plugin.Reattach) {
	js, err := json.Marshal(ra)
	if err != nil {
		s.log.Error("cannot encode plugin reattach info", zap.String("plugin", r.cfg.Name), zap.Error(err))
		return
	}
	r.mu.Lock()
	r.ra = js
	r.mu.Unlock()
	r.once.Do(func() { close(r.first) })
	go s.call(func() {
		// The latest process's, whatever order these calls run in.
		m := hotrestart.PluginReattach{Name: r.cfg.Name, Reattach: r.reattach()}.Message()
		for p := range s.procs {
			if p.conn != nil && p.g.plugins[r.cfg.Name] == r {
				if err := p.conn.Send(m); err != nil {
					s.log.Warn("cannot reach worker", append(s.procFields(p), zap.String("message", "plugin reattach"), zap.Error(err))...)
				}
			}
		}
	})
}

// helloPlugins is the plugin part of a Hello for generation g.
func helloPlugins(g *generation) map[string]json.RawMessage {
	if len(g.plugins) == 0 {
		return nil
	}
	m := make(map[string]json.RawMessage, len(g.plugins))
	for name, r := range g.plugins {
		if ra := r.reattach(); ra != nil {
			m[name] = ra
		}
	}
	return m
}

// stopUnusedPlugins stops the plugin processes that no generation with a
// worker, nor the serving or starting one, uses. Called by the loop.
func (s *Supervisor) stopUnusedPlugins() {
	used := map[*pluginRun]bool{}
	mark := func(g *generation) {
		if g != nil {
			for _, r := range g.plugins {
				used[r] = true
			}
		}
	}
	if s.mode == running && !s.handedOver() {
		mark(s.cur)
		mark(s.next)
	}
	for p := range s.procs {
		mark(p.g)
	}
	for r := range s.pluginRuns {
		if !used[r] {
			s.log.Info("stopping plugin", zap.String("plugin", r.cfg.Name))
			r.cancel()
			delete(s.pluginRuns, r)
		}
	}
}

// stopPlugins stops every plugin process and waits (up to reapWait) for
// them to be gone.
func (s *Supervisor) stopPlugins() {
	var runs []*pluginRun
	for r := range s.pluginRuns {
		r.cancel()
		runs = append(runs, r)
		delete(s.pluginRuns, r)
	}
	deadline := time.NewTimer(reapWait)
	defer deadline.Stop()
	for _, r := range runs {
		select {
		case <-r.done:
		case <-deadline.C:
			return
		}
	}
}
