package supervisor

import (
	"fmt"

	"github.com/sluice-proxy/sluice/hotrestart"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// reload starts a config reload, on behalf of reply (nil for SIGHUP): the
// config file is loaded and validated again, and a new generation starts on
// the same sockets. The outcome is answered when known: at once if the
// config is invalid, else when the new workers are ready or one of them
// fails. Called by the loop.
func (s *Supervisor) reload(reply chan<- Response, cause string) {
	switch {
	case s.mode != running:
		answer(reply, Response{Error: errShuttingDown.Error()})
		return
	case s.handedOver():
		answer(reply, Response{Error: fmt.Sprintf("supervisor: this supervisor has handed over to pid %d; send the reload there", s.up.pid)})
		return
	case s.up != nil, s.parent != nil && !s.parent.committed:
		s.log.Warn("reload refused", zap.String("cause", cause), zap.String("reason", "upgrade in progress"))
		answer(reply, Response{Error: "supervisor: upgrade in progress; reload once it is answered"})
		return
	case s.next != nil && reply == nil:
		// A signal has no one to answer: the file may have changed again
		// since the reload in progress read it, so reload once more after.
		s.hupPending = true
		s.log.Info("reload queued", zap.String("cause", cause), zap.Int("generation", s.next.num),
			zap.String("reason", "reload already in progress"))
		return
	case s.next != nil:
		s.log.Warn("reload refused", zap.String("cause", cause), zap.Int("generation", s.next.num),
			zap.String("reason", "reload already in progress"))
		answer(reply, Response{Error: fmt.Sprintf("supervisor: reload already in progress (generation %d is starting)", s.next.num)})
		return
	}
	s.sdNotify(s.notify.Reloading("reloading " + s.path))
	s.log.Info("reloading", zap.String("cause", cause), zap.String("config", s.path))
	cfg, err := LoadConfig(s.path)
	var g *generation
	if err == nil {
		g, err = s.newGeneration(cfg, s.cur.groups, nil)
	}
	if err != nil {
		s.reloadFailed(reply, err)
		return
	}
	if cfg.Server.ControlSocket != s.cur.cfg.Server.ControlSocket {
		s.log.Warn("server.control_socket changed; the new path takes effect at the next start",
			zap.String("control_socket", s.cur.cfg.Server.ControlSocket))
	}
	s.next, s.waiter = g, reply
	g.timer = s.later(readyTimeout, func() {
		g.timer = nil
		if s.next == g {
			s.abortReload(fmt.Errorf("supervisor: generation %d: workers not ready within %v", g.num, readyTimeout), true)
		}
	})
	// The new plugins' first launch and the health checks' first round
	// are waited for on a goroutine of its own: meanwhile the loop
	// answers signals, the control socket and the serving generation's
	// workers.
	go func() {
		s.waitPlugins(g.pluginsStarted)
		g.warm()
		s.call(func() {
			if s.next == g {
				s.startWorkers(g)
			}
		})
	}()
}

// startWorkers starts the workers of the reload's generation g, once its
// new plugins are up (or were waited for long enough). Called by the loop.
func (s *Supervisor) startWorkers(g *generation) {
	s.log.Info("starting workers", zap.Int("workers", len(g.slots)), zap.Int("generation", g.num),
		zap.Int("gomaxprocs", g.cfg.Server.GoMaxProcs))
	s.announceSuccessor(g.num)
	for i := range g.slots {
		s.spawn(g, i)
	}
}

// completeReload makes the ready generation g the serving one and retires
// the previous one.
func (s *Supervisor) completeReload(g *generation) {
	old, reply := s.cur, s.waiter
	g.stopTimer()
	g.state = genServing
	s.cur, s.next, s.waiter = g, nil, nil
	s.stats.serve(g)
	s.restartStatsd(g.cfg)
	s.applyLogLevel(old.cfg.Log.Level, g.cfg.Log.Level)
	if g.cfg.Admin != old.cfg.Admin {
		s.log.Warn("admin changed; the new address takes effect at the next start or upgrade",
			zap.String("admin_address", old.cfg.Admin.Address))
	}
	s.retire(old)
	s.log.Info("reload complete", zap.Int("generation", g.num), zap.Int("previous_generation", old.num),
		zap.Int("workers", len(g.slots)))
	s.sdNotify(s.notify.Ready(g.summary()))
	// The admin API shows the new config (/config_dump, /listeners, /certs)
	// by the time the requester hears that the reload is done.
	s.publish()
	answer(reply, Response{OK: true, Generation: g.num})
	s.queuedReload()
}

// queuedReload runs the reload a SIGHUP asked for while another one was in
// progress, now that it is over; or, with none, the upgrade a SIGUSR2
// asked for meanwhile (after the queued reload, if both are). Called by
// the loop.
func (s *Supervisor) queuedReload() {
	switch {
	case s.hupPending:
		s.hupPending = false
		s.reload(nil, "SIGHUP (queued)")
	case s.usr2Pending:
		s.usr2Pending = false
		s.startUpgrade(nil, "SIGUSR2 (queued)")
	}
}

// applyLogLevel applies a log.level changed by a reload to the supervisor's
// own logger, as the new workers take it from their config: the supervisor
// used to keep the level it started with. A level set earlier through the
// admin /logging gives way to the file's new one, for workers too. Called
// by the loop.
func (s *Supervisor) applyLogLevel(old, next string) {
	if old == next {
		return
	}
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(next)); err != nil {
		return // validated; "" keeps the level
	}
	s.level.SetLevel(l)
	s.workerLvl.Store("")
	s.log.Info("log level changed", zap.String("level", l.String()), zap.String("previous_level", old))
}

// abortReload abandons the starting generation: its workers are killed,
// its new sockets closed, and the serving generation carries on. notify
// tells systemd that the reload is over (not wanted during a shutdown).
func (s *Supervisor) abortReload(err error, notify bool) {
	g, reply := s.next, s.waiter
	s.next, s.waiter = nil, nil
	g.state = genFailed
	g.stopTimer()
	g.closeSockets()
	s.killGeneration(g)
	s.announceSuccessor(0)
	s.hosts.apply(s.cur.cfg)
	if !notify {
		s.hupPending, s.usr2Pending = false, false // shutting down
		s.log.Error("reload failed", zap.Int("generation", g.num), zap.Error(err))
		answer(reply, Response{Error: "reload failed: " + err.Error()})
		return
	}
	s.reloadFailed(reply, err)
	s.queuedReload()
}

// reloadFailed reports a failed reload: in the log, to systemd, and to the
// requester.
func (s *Supervisor) reloadFailed(reply chan<- Response, err error) {
	s.log.Error("reload failed", zap.Error(err), zap.Int("generation", s.cur.num))
	s.sdNotify(s.notify.Ready("reload failed: " + err.Error() + "; " + s.cur.summary()))
	answer(reply, Response{Error: "reload failed: " + err.Error()})
}

// answer sends r to a requester, if there is one. reply is buffered, so
// this never blocks the loop.
func answer(reply chan<- Response, r Response) {
	if reply != nil {
		reply <- r
	}
}

// announceSuccessor tells the serving generation's workers which generation
// is starting to replace theirs (0: none after all): their HTTP/3 listeners
// pass packets opening new QUIC connections to its worker of the same slot
// as soon as that worker exists (hotrestart.TypeSuccessor). Sent before the
// new workers start, it leaves no moment in which the old and the new
// worker of a slot, reading the same UDP socket, both open connections.
func (s *Supervisor) announceSuccessor(gen int) {
	if s.cur == nil {
		return
	}
	for p := range s.procs {
		if p.g != s.cur || p.conn == nil {
			continue
		}
		if err := p.conn.Send(hotrestart.Message{Type: hotrestart.TypeSuccessor, Body: hotrestart.SuccessorBody(gen)}); err != nil {
			s.log.Warn("cannot reach worker", append(s.procFields(p), zap.String("message", "successor"), zap.Error(err))...)
		}
	}
}
