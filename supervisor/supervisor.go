// Package supervisor is the sluice process that owns every listening socket
// and runs the workers (sluice run).
//
// The supervisor loads and validates the config, binds every listener
// itself, starts server.workers worker processes (re-executions of its own
// binary, "sluice worker --slot N --generation G") and hands each its
// config and sockets over a hotrestart control channel on fd 3. It never
// proxies a byte. A worker that dies is restarted in its slot, on the same
// sockets, with capped exponential backoff; the supervisor never closes a
// listening socket while it runs, so connections queued meanwhile are
// accepted by the replacement.
//
// Everything happens on one event loop goroutine that selects over signals,
// worker events and restart timers; reloads and upgrades will add cases to
// the same select.
//
// Signals: SIGTERM drains the workers (up to server.drain_timeout) and
// exits 0; SIGINT and SIGQUIT kill the workers and exit 0 at once; SIGHUP,
// SIGUSR1 and SIGUSR2 are logged and ignored for now.
package supervisor

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/hotrestart"
)

const (
	// killGrace is added to drain_timeout before leftover workers of a
	// graceful shutdown are killed.
	killGrace = 5 * time.Second
	// reapWait bounds the wait for killed workers to be reaped.
	reapWait = 2 * time.Second
)

// Options configure Run.
type Options struct {
	// ConfigPath is the config file.
	ConfigPath string
	// Executable is the binary started as workers; empty means this
	// process's own (os.Executable).
	Executable string
}

// mode is the supervisor's lifecycle state.
type mode uint8

const (
	running  mode = iota
	draining      // SIGTERM: workers drain, none is restarted
	stopping      // SIGINT, SIGQUIT or drain deadline: workers are killed
)

// Supervisor holds the state of a running supervisor. Fields below the
// channels are owned by the event loop.
type Supervisor struct {
	log    *zap.Logger
	cfg    *config.Config
	exe    string
	gen    int
	groups []*socketGroup

	events   chan event
	restarts chan int // slot whose backoff has elapsed
	done     chan struct{}

	mode      mode
	slots     []slot
	procs     map[*proc]struct{} // every process not yet reaped
	everReady bool
}

// slot is one worker slot of the current generation.
type slot struct {
	proc    *proc // current process, nil while waiting to restart
	backoff backoff
	timer   *time.Timer // pending restart
}

// Run runs a supervisor in the foreground until it is told to stop, and
// returns the process exit code: 0 after a requested shutdown, 1 if the
// config is invalid or a listener cannot be bound.
func Run(opts Options) int {
	cfg, err := LoadConfig(opts.ConfigPath)
	if err != nil {
		boot, _ := NewLogger(config.Log{})
		boot.Error("invalid config", zap.Error(err))
		return 1
	}
	log, err := NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer log.Sync()
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			log.Error("cannot find own executable", zap.Error(err))
			return 1
		}
	}
	s := &Supervisor{
		log:      log,
		cfg:      cfg,
		exe:      exe,
		gen:      1,
		events:   make(chan event, 16),
		restarts: make(chan int),
		done:     make(chan struct{}),
		slots:    make([]slot, max(cfg.Server.Workers, 1)),
		procs:    make(map[*proc]struct{}),
	}
	return s.run()
}

// run binds the listeners, starts the workers and runs the event loop.
func (s *Supervisor) run() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigs)
	defer close(s.done)

	groups, err := bindListeners(s.cfg, len(s.slots))
	if err != nil {
		s.log.Error("cannot listen", zap.Error(err))
		return 1
	}
	s.groups = groups
	defer s.closeListeners()
	for _, g := range groups {
		s.log.Info("listening", zap.String("listener", g.name), zap.String("address", g.addr))
	}
	s.log.Info("starting workers", zap.Int("workers", len(s.slots)), zap.Int("generation", s.gen),
		zap.Int("gomaxprocs", s.cfg.Server.GoMaxProcs))
	for i := range s.slots {
		s.spawn(i)
	}

	var deadline <-chan time.Time
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case unix.SIGTERM:
				if s.mode == running {
					s.log.Info("draining", zap.Stringer("signal", sig), zap.Duration("drain_timeout", s.cfg.Server.DrainTimeout.Duration))
					s.drain()
					deadline = time.After(s.cfg.Server.DrainTimeout.Duration + killGrace)
				}
			case unix.SIGINT, unix.SIGQUIT:
				if s.mode != stopping {
					s.log.Info("stopping", zap.Stringer("signal", sig))
					s.stop()
					deadline = time.After(reapWait)
				}
			default:
				s.log.Info("signal ignored", zap.Stringer("signal", sig))
			}
		case e := <-s.events:
			s.handle(e)
		case i := <-s.restarts:
			s.slots[i].timer = nil
			if s.mode == running && s.slots[i].proc == nil {
				s.spawn(i)
			}
		case <-deadline:
			if s.mode == draining {
				s.log.Warn("drain deadline passed, killing workers", zap.Int("workers", len(s.procs)))
				s.stop()
				deadline = time.After(reapWait)
				continue
			}
			s.log.Error("workers not reaped after SIGKILL", zap.Int("workers", len(s.procs)))
			return 1
		}
		if s.mode != running && len(s.procs) == 0 {
			s.log.Info("exiting")
			return 0
		}
	}
}

// handle applies one worker event.
func (s *Supervisor) handle(e event) {
	p := e.p
	switch e.kind {
	case evStarted:
		p.pid, p.conn, p.started = e.pid, e.conn, time.Now()
		s.log.Info("worker started", s.procFields(p)...)
		if e.err != nil {
			s.log.Error("cannot send hello to worker", append(s.procFields(p), zap.Error(e.err))...)
		}
		switch s.mode {
		case draining:
			s.send(p, hotrestart.TypeDrain)
		case stopping:
			s.kill(p)
		}
	case evReady:
		p.ready = true
		s.log.Info("worker ready", s.procFields(p)...)
		s.checkReady()
	case evExited:
		s.exited(p, e)
	}
}

// exited forgets p and, while running, schedules its slot's restart.
func (s *Supervisor) exited(p *proc, e event) {
	delete(s.procs, p)
	if p.conn != nil {
		p.conn.Close()
	}
	fields := s.procFields(p)
	switch {
	case e.state != nil:
		fields = append(fields, exitFields(e.state)...)
		fields = append(fields, zap.Duration("uptime", time.Since(p.started).Round(time.Millisecond)))
	case e.err != nil:
		fields = append(fields, zap.String("reason", "start failed"), zap.Error(e.err))
	}
	sl := &s.slots[p.slot]
	if s.mode != running || p.gen != s.gen || sl.proc != p {
		s.log.Info("worker exited", fields...)
		return
	}
	sl.proc = nil
	uptime := time.Duration(0)
	if !p.started.IsZero() {
		uptime = time.Since(p.started)
	}
	d := sl.backoff.delay(uptime)
	s.log.Warn("worker exited", append(fields, zap.Duration("backoff", d))...)
	if d == 0 {
		s.spawn(p.slot)
		return
	}
	slotIndex := p.slot
	sl.timer = time.AfterFunc(d, func() {
		select {
		case s.restarts <- slotIndex:
		case <-s.done:
		}
	})
}

// checkReady logs "ready" the first time every slot has a ready worker.
func (s *Supervisor) checkReady() {
	if s.everReady {
		return
	}
	for i := range s.slots {
		if p := s.slots[i].proc; p == nil || !p.ready {
			return
		}
	}
	s.everReady = true
	s.log.Info("ready", zap.Int("workers", len(s.slots)), zap.Int("generation", s.gen))
}

// drain starts a graceful shutdown: the supervisor lets go of the
// listening sockets and asks every worker to drain.
func (s *Supervisor) drain() {
	s.mode = draining
	s.cancelRestarts()
	s.closeListeners()
	for p := range s.procs {
		if p.pid != 0 {
			s.send(p, hotrestart.TypeDrain)
		}
	}
}

// stop kills every worker.
func (s *Supervisor) stop() {
	s.mode = stopping
	s.cancelRestarts()
	s.closeListeners()
	for p := range s.procs {
		if p.pid != 0 {
			s.kill(p)
		}
	}
}

func (s *Supervisor) cancelRestarts() {
	for i := range s.slots {
		if t := s.slots[i].timer; t != nil {
			t.Stop()
			s.slots[i].timer = nil
		}
	}
}

func (s *Supervisor) closeListeners() {
	for _, g := range s.groups {
		g.close()
	}
}

// send sends a bodiless message to p; a worker that cannot be told is
// killed, since it would otherwise never exit.
func (s *Supervisor) send(p *proc, t hotrestart.Type) {
	if p.conn != nil {
		err := p.conn.Send(hotrestart.Message{Type: t})
		if err == nil {
			return
		}
		s.log.Warn("cannot reach worker", append(s.procFields(p), zap.Stringer("message", t), zap.Error(err))...)
	}
	s.kill(p)
}

// kill sends SIGKILL to p, if it has started.
func (s *Supervisor) kill(p *proc) {
	if p.pid <= 0 {
		return // never signal pid 0 or -1: that is a process group
	}
	if err := unix.Kill(p.pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		s.log.Error("cannot kill worker", append(s.procFields(p), zap.Error(err))...)
	}
}

// procFields identify p in log lines.
func (s *Supervisor) procFields(p *proc) []zap.Field {
	return []zap.Field{zap.Int("slot", p.slot), zap.Int("pid", p.pid), zap.Int("generation", p.gen)}
}

// exitFields say why a process ended: its exit status or the signal that
// killed it.
func exitFields(st *os.ProcessState) []zap.Field {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		return []zap.Field{zap.String("reason", "killed by "+name), zap.String("signal", name)}
	}
	return []zap.Field{zap.String("reason", st.String()), zap.Int("status", st.ExitCode())}
}
