package supervisor

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/hotrestart"
)

// genState is where a generation is in its life.
type genState uint8

const (
	genStarting genState = iota // a reload's workers are starting; the previous generation serves
	genServing                  // the current generation
	genDraining                 // replaced by a newer one: its workers drain and are not restarted
	genFailed                   // a reload that failed: its workers are killed
)

// generation is one config generation: a config, its sockets and its
// worker slots. Every field is owned by the event loop.
type generation struct {
	num    int
	cfg    *config.Config
	groups []*socketGroup
	slots  []slot
	state  genState
	live   int         // worker processes not yet reaped
	timer  *time.Timer // readiness timeout while starting, kill deadline while draining

	stats   *statsRegion          // the stats region its workers write; nil once released
	slabs   []int                 // the worker slab of each slot in stats
	plugins map[string]*pluginRun // the plugin processes its workers use, by name
	// pluginsStarted are the plugin processes started for it, whose first
	// launch its workers wait for (waitPlugins); warm waits for the health
	// checks' first round (hostState.warmWaiter). Both before its workers
	// start.
	pluginsStarted []*pluginRun
	warm           func()
	hostIdx        []int // each slot's worker index in the host-state region (-1: none)
}

// slot is one worker slot of a generation.
type slot struct {
	proc    *proc // current process, nil while waiting to restart
	backoff backoff
	timer   *time.Timer // pending restart
}

// newGeneration numbers a generation for cfg and opens its sockets: those
// of prev whose listener is unchanged are kept, adopted ones are used where
// they match, the others are bound. It logs a "listening" line per kept,
// adopted or bound socket group.
func (s *Supervisor) newGeneration(cfg *config.Config, prev []*socketGroup, adopted *adoptedSet) (*generation, error) {
	workers := max(cfg.Server.Workers, 1)
	groups, origins, err := openGroups(cfg, workers, prev, adopted)
	if err != nil {
		return nil, err
	}
	g := &generation{num: s.lastGen + 1, cfg: cfg, groups: groups, slots: make([]slot, workers)}
	if err := s.stats.allocate(g); err != nil {
		g.closeSockets()
		return nil, err
	}
	s.hosts.allocate(g)
	s.hosts.apply(cfg)
	var running map[string]*pluginRun
	if s.cur != nil {
		running = s.cur.plugins
	}
	g.plugins, g.pluginsStarted = s.startPlugins(cfg, running)
	g.warm = s.hosts.warmWaiter()
	s.lastGen++
	for i, sg := range groups {
		s.log.Info("listening", zap.String("listener", sg.name), zap.String("address", sg.addr),
			zap.String("sockets", origins[i]), zap.Int("generation", g.num))
	}
	return g, nil
}

// closeSockets closes the generation's copies of its sockets. A socket that
// a newer generation or a worker still holds stays open.
func (g *generation) closeSockets() {
	for _, sg := range g.groups {
		sg.close()
	}
}

// cancelRestarts stops the pending restarts of g's slots.
func (g *generation) cancelRestarts() {
	for i := range g.slots {
		if t := g.slots[i].timer; t != nil {
			t.Stop()
			g.slots[i].timer = nil
		}
	}
}

// stopTimer stops g's readiness timeout or kill deadline.
func (g *generation) stopTimer() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// ready reports whether every slot of g has a ready worker.
func (g *generation) ready() bool {
	for i := range g.slots {
		if p := g.slots[i].proc; p == nil || !p.ready {
			return false
		}
	}
	return true
}

// summary is the one-line status of a serving generation.
func (g *generation) summary() string {
	return fmt.Sprintf("serving: generation %d, %d workers, %d listeners", g.num, len(g.slots), len(g.groups))
}

// retire makes g a draining generation: its restarts stop, its copies of
// the sockets close (its workers close theirs as they stop accepting), its
// workers are told to stop accepting and, once all have (or after
// stopAcceptingWait), to drain; those still running after the drain
// timeout and killGrace are killed.
//
// The two steps keep a drained client off the old generation: the workers
// of a slot share its socket across generations, and a client that one
// worker's drain (an HTTP/2 GOAWAY, a Connection: close) sends to
// reconnect would otherwise now and then be accepted by another worker of
// g that has not heard of the drain yet, and be sent away a second time.
func (s *Supervisor) retire(g *generation) {
	g.state = genDraining
	g.cancelRestarts()
	g.stopTimer()
	g.closeSockets()
	for p := range s.procs {
		if p.g != g || p.pid == 0 {
			continue
		}
		if p.conn != nil && p.conn.Send(hotrestart.Message{Type: hotrestart.TypeStopAccepting}) == nil {
			p.stopping = true
		} else {
			s.drainWorker(p)
		}
	}
	s.later(stopAcceptingWait, func() { s.drainStopped(g, true) })
	s.drainStopped(g, false)
	if g.live == 0 {
		return
	}
	g.timer = s.later(g.cfg.Server.DrainTimeout.Duration+killGrace, func() {
		g.timer = nil
		s.log.Warn("drain deadline passed, killing workers", zap.Int("generation", g.num), zap.Int("workers", g.live))
		s.killGeneration(g)
	})
}

// stopAcceptingWait bounds the wait for a retired generation's workers to
// say that they stopped accepting: one that has not by then (busy, or
// stuck) is drained with the others, as it would be without the first
// step.
const stopAcceptingWait = time.Second

// drainStopped tells the workers of the retired generation g that were
// asked to stop accepting to drain, once every one of them has said it
// stopped (or exited), or at once if timedOut.
func (s *Supervisor) drainStopped(g *generation, timedOut bool) {
	if !timedOut {
		for p := range s.procs {
			if p.g == g && p.stopping && !p.stopped {
				return
			}
		}
	}
	for p := range s.procs {
		if p.g == g && p.stopping {
			p.stopping = false
			s.drainWorker(p)
		}
	}
}

// killGeneration kills every started worker of g; the others are killed
// when they report that they started.
func (s *Supervisor) killGeneration(g *generation) {
	for p := range s.procs {
		if p.g == g {
			s.kill(p)
		}
	}
}
