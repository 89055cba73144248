// Package supervisor is the sluice process that owns every listening socket
// and runs the workers (sluice run).
//
// The supervisor loads and validates the config, binds every listener
// itself (or adopts the sockets systemd passed with LISTEN_FDS), starts
// server.workers worker processes (re-executions of its own binary, "sluice
// worker --slot N --generation G") and hands each its config and sockets
// over a hotrestart control channel on fd 3. It never proxies a byte. A
// worker that dies is restarted in its slot and generation, on the same
// sockets, with capped exponential backoff; the supervisor never closes a
// listening socket that a generation serves, so connections queued
// meanwhile are accepted by the replacement.
//
// A reload (SIGHUP, or "reload" on the control socket) re-reads the config
// file and validates it; if it is valid, a new generation of workers starts
// on the same sockets (new listeners get new sockets), and once every new
// worker is ready the old generation drains. A failed reload leaves the
// running generation untouched. Only one reload runs at a time.
//
// Everything happens on one event loop goroutine that selects over signals,
// worker events, control requests and timers; other goroutines only post to
// it.
//
// A binary upgrade (SIGUSR2, or "upgrade" on the control socket) starts
// the binary now at the supervisor's executable path as a new supervisor,
// which takes over every socket over a hotrestart channel, starts its own
// generation and, once it is ready, makes this one drain its workers
// (handing their idle connections over) and exit. A failed upgrade leaves
// the running generation untouched. Only one reload or upgrade runs at a
// time.
//
// Signals: SIGTERM drains the workers (up to server.drain_timeout) and
// exits 0; SIGINT and SIGQUIT kill the workers and exit 0 at once; SIGHUP
// reloads; SIGUSR2 upgrades; SIGUSR1 makes every worker reopen its access
// log files. The supervisor tells systemd about all of this with sd_notify.
//
// The supervisor also owns the stats regions (stats.go), the TLS session
// ticket keys (tickets.go), the plugin processes (plugins.go), the statsd
// sink and the admin API (admin.go).
package supervisor

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/hotrestart"
	"github.com/sluice-proxy/sluice/supervisor/sdnotify"
)

const (
	// killGrace is added to drain_timeout before leftover workers of a
	// graceful shutdown or of a replaced generation are killed.
	killGrace = 5 * time.Second
	// reapWait bounds the wait for killed workers to be reaped.
	reapWait = 2 * time.Second
	// readyTimeout bounds how long a reload waits for its new workers.
	readyTimeout = 30 * time.Second
)

// Options configure Run.
type Options struct {
	// ConfigPath is the config file; a reload reads it again.
	ConfigPath string
	// Executable is the binary started as workers; empty means this
	// process's own (/proc/self/exe, which stays valid when the file at its
	// path is replaced).
	Executable string
	// Version is the binary's version, for the log and the upgrade
	// handshake.
	Version string
}

// selfExe is the binary that workers run by default: always this
// process's own, even once an upgrade has replaced the file at its path.
const selfExe = "/proc/self/exe"

// mode is the supervisor's lifecycle state.
type mode uint8

const (
	running  mode = iota
	draining      // SIGTERM: workers drain, none is restarted
	stopping      // SIGINT, SIGQUIT or drain deadline: workers are killed
	// listenersDrained: /drain_listeners closed the listeners and drains
	// (or killed, at the deadline) the workers, none is restarted, and the
	// supervisor stays up with its admin API until SIGTERM or SIGINT.
	listenersDrained
)

// Supervisor holds the state of a running supervisor. The fields above the
// channels are set before the event loop starts and then only read; those
// below are owned by the event loop.
type Supervisor struct {
	log       *zap.Logger
	path      string
	exe       string // the binary an upgrade starts: the path this one was started from
	workerExe string // the binary workers run
	notify    *sdnotify.Notifier

	events   chan event
	calls    chan func() // timer callbacks, run on the loop
	requests chan request
	done     chan struct{}

	mode      mode
	cur       *generation        // the serving generation
	next      *generation        // a reload's starting generation, or nil
	waiter    chan<- Response    // who asked for the reload in progress; nil for SIGHUP
	lastGen   int                // the highest generation number given out
	procs     map[*proc]struct{} // every process not yet reaped
	everReady bool
	control   *net.UnixListener
	answering sync.WaitGroup   // control requests being answered; safe for concurrent use
	up        *upgrade         // an upgrade this supervisor started, nil if none
	parent    *parent          // the supervisor this one takes over from, until it exits
	exitCode  int              // returned once every worker is gone
	deadline  <-chan time.Time // drain or reap deadline of a shutdown

	// hupPending is a SIGHUP that came during a reload: nobody can be told
	// to retry it, so it runs once that reload is over. usr2Pending is the
	// same for a SIGUSR2 (an upgrade), which runs after a pending reload.
	hupPending  bool
	usr2Pending bool

	version    string
	level      zap.AtomicLevel // the supervisor's log level; safe for concurrent use
	workerLvl  atomic.Value    // string: the workers' level set at runtime, "" for the config's
	stats      *statsState     // safe for concurrent use
	hosts      *hostState      // owned by the loop
	admin      *adminServer    // safe for concurrent use
	adminLn    net.Listener
	adminSrv   *http.Server
	tickets    *tickets
	pluginRuns map[*pluginRun]struct{}
	statsd     *statsdRun

	// members is the view membership_healthy is computed from (the
	// admin view, kept also without an admin API, for statsd).
	members atomic.Pointer[view]
}

// Run runs a supervisor in the foreground until it is told to stop, and
// returns the process exit code: 0 after a requested shutdown, 1 if the
// config is invalid or a listener cannot be bound.
func Run(opts Options) int {
	// A log line written to a stderr nobody reads any more (the pipe to a
	// log collector that exited or restarted) raises SIGPIPE, which the Go
	// runtime makes fatal for fds 1 and 2: the supervisor, and with it
	// every worker, would die of it. Ignored, the write just fails.
	signal.Ignore(unix.SIGPIPE)
	// Take systemd's sockets and the upgrade channel first, so that their
	// variables are gone from the environment whatever happens next.
	adopted, skipped, adoptErr := adoptListenFDs()
	up, upErr := openUpgradeChannel()
	boot, _ := NewLogger(config.Log{})
	if upErr != nil {
		boot.Error("cannot open the upgrade channel", zap.Error(upErr))
		return 1
	}
	var inherited []*socketGroup
	var par *parent
	var in *hotrestart.Inherited
	if up != nil {
		st, inh, err := handshake(up, opts.Version)
		if err != nil {
			boot.Error("upgrade failed", zap.Error(err))
			failHandshake(up, err)
			return 1
		}
		inherited = inheritedGroups(&st)
		par = &parent{pid: st.PID, conn: up, state: st, notify: sdnotify.New()}
		in = &inh
		defer in.CloseFDs()
	}
	cfg, err := LoadConfig(opts.ConfigPath)
	if err != nil {
		boot.Error("invalid config", zap.Error(err))
		if par != nil {
			failHandshake(up, fmt.Errorf("invalid config: %w", err))
		}
		return 1
	}
	log, level, err := NewLevelLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer log.Sync()
	if adoptErr != nil {
		log.Error("cannot adopt sockets", zap.Error(adoptErr))
		return 1
	}
	for _, why := range skipped {
		log.Warn("passed descriptor ignored", zap.String("descriptor", why))
	}
	exe, err := ownPath()
	if err != nil {
		log.Error("cannot find own executable", zap.Error(err))
		return 1
	}
	workerExe := opts.Executable
	if workerExe == "" {
		workerExe = selfExe
	}
	tk, err := newTickets(in)
	if err != nil {
		log.Error("cannot make TLS ticket keys", zap.Error(err))
		return 1
	}
	hosts, err := newHostState(cfg, in, log)
	if err != nil {
		log.Error("cannot create the host-state region", zap.Error(err))
		return 1
	}
	defer hosts.stop()
	s := &Supervisor{
		version:    opts.Version,
		level:      level,
		stats:      newStatsState(in, log),
		hosts:      hosts,
		tickets:    tk,
		pluginRuns: map[*pluginRun]struct{}{},
		log:        log,
		path:       opts.ConfigPath,
		exe:        exe,
		workerExe:  workerExe,
		notify:     sdnotify.New(),
		events:     make(chan event, 16),
		calls:      make(chan func()),
		requests:   make(chan request),
		done:       make(chan struct{}),
		procs:      make(map[*proc]struct{}),
		parent:     par,
	}
	s.admin = &adminServer{s: s}
	hosts.call, hosts.send, hosts.changed = s.call, s.broadcast, s.publish
	s.publish()
	fields := []zap.Field{zap.String("version", opts.Version), zap.Int("pid", os.Getpid()), zap.String("executable", exe)}
	if par != nil {
		// systemd hears from this process only once it has taken over.
		s.notify = sdnotify.NewAt("")
		s.lastGen = par.state.NextGeneration - 1
		fields = append(fields, zap.Int("previous_pid", par.pid), zap.Ints("previous_draining", par.state.Draining))
	}
	log.Info("supervisor starting", fields...)
	code := s.run(cfg, adopted, inherited, in)
	s.waitAnswers()
	return code
}

// answerWait bounds how long an exiting supervisor waits for the control
// answers it still writes (after an upgrade, the requester's answer).
const answerWait = time.Second

// waitAnswers waits, up to answerWait, until every control request in
// progress has been answered.
func (s *Supervisor) waitAnswers() {
	done := make(chan struct{})
	go func() {
		s.answering.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(answerWait):
	}
}

// ownPath returns the path of this process's binary, recorded at start:
// the command's path as started when it names one (so that an upgrade
// follows a symlink that now points elsewhere), else os.Executable, which
// the runtime resolves at start (once the file is replaced,
// /proc/self/exe reads "… (deleted)").
func ownPath() (string, error) {
	if a := os.Args[0]; strings.Contains(a, "/") {
		return filepath.Abs(a)
	}
	return os.Executable()
}

// run opens the sockets, starts the workers and runs the event loop.
// inherited are the socket groups of a supervisor this one takes over
// from; they are closed once the first generation has its own copies.
func (s *Supervisor) run(cfg *config.Config, adopted *adoptedSet, inherited []*socketGroup, in *hotrestart.Inherited) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigs)
	defer close(s.done)
	defer s.stopPlugins()
	defer s.stopStatsd()
	defer s.closeAdmin()

	// Before binding anything: a second supervisor on the same ports would
	// take a share of their connections.
	if s.parent == nil {
		if err := controlInUse(cfg.Server.ControlSocket); err != nil {
			s.log.Error("already running", zap.Error(err))
			adopted.closeRest()
			return 1
		}
	}
	g, err := s.newGeneration(cfg, inherited, adopted)
	if err == nil {
		// Before the loop: nothing else to answer yet.
		s.waitPlugins(g.pluginsStarted)
		g.warm()
	}
	for _, a := range adopted.closeRest() {
		s.log.Warn("adopted socket matches no listener, closed", zap.String("address", a.addr), zap.String("fd_name", a.name))
	}
	for _, ig := range inherited {
		ig.close()
	}
	if err != nil {
		s.log.Error("cannot listen", zap.Error(err))
		if s.parent != nil {
			failHandshake(s.parent.conn, err)
		}
		return 1
	}
	g.state = genServing
	s.cur = g
	s.stats.serve(g)
	s.scheduleRotation()
	defer s.closeAllSockets()
	if s.parent != nil {
		s.parent.adminLn = inheritedAdmin(in.AdminFD, in.AdminAddr, cfg, s.log)
		in.AdminFD = -1
		go s.readParent(s.parent)
		defer s.closeParent()
	} else {
		s.openControl(cfg.Server.ControlSocket)
		s.openAdmin(cfg, nil)
		s.startStatsd(cfg, nil)
	}
	s.publish()
	defer s.closeControl()
	s.log.Info("starting workers", zap.Int("workers", len(g.slots)), zap.Int("generation", g.num),
		zap.Int("gomaxprocs", cfg.Server.GoMaxProcs))
	for i := range g.slots {
		s.spawn(g, i)
	}

	var watchdog <-chan time.Time
	// A supervisor taking over pings (through s.notify) from its commit on.
	if iv := sdnotify.WatchdogInterval(); iv > 0 && (s.notify.Enabled() || s.parent != nil && s.parent.notify.Enabled()) {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
		s.log.Info("watchdog enabled", zap.Duration("interval", iv))
	}

	for {
		select {
		case sig := <-sigs:
			switch sig {
			case unix.SIGTERM:
				if s.handedOver() {
					s.log.Info("signal ignored: handed over, the workers drain", zap.Stringer("signal", sig))
				} else if s.mode == listenersDrained {
					// The workers are already draining (or gone): exit
					// once they are.
					s.log.Info("stopping after /drain_listeners", zap.Stringer("signal", sig), zap.Int("workers", len(s.procs)))
					s.sdNotify(s.notify.Stopping("stopping"))
					s.mode = draining
				} else if s.mode == running {
					d := s.cur.cfg.Server.DrainTimeout.Duration
					s.log.Info("draining", zap.Stringer("signal", sig), zap.Duration("drain_timeout", d))
					s.drain()
					s.deadline = time.After(d + killGrace)
				}
			case unix.SIGINT, unix.SIGQUIT:
				if s.mode != stopping {
					s.log.Info("stopping", zap.Stringer("signal", sig))
					s.stop()
					s.deadline = time.After(reapWait)
				}
			case unix.SIGHUP:
				s.reload(nil, "SIGHUP")
			case unix.SIGUSR2:
				s.startUpgrade(nil, "SIGUSR2")
			case unix.SIGUSR1:
				s.reopenLogs("SIGUSR1")
			default:
				s.log.Info("signal ignored", zap.Stringer("signal", sig))
			}
		case e := <-s.events:
			s.handle(e)
		case f := <-s.calls:
			f()
		case r := <-s.requests:
			s.request(r)
		case <-watchdog:
			s.sdNotify(s.notify.Watchdog())
		case <-s.deadline:
			if s.mode == draining {
				s.log.Warn("drain deadline passed, killing workers", zap.Int("workers", len(s.procs)))
				s.stop()
				s.deadline = time.After(reapWait)
				continue
			}
			if s.mode == listenersDrained {
				s.log.Warn("drain deadline passed, killing workers", zap.Int("workers", len(s.procs)))
				s.killAll()
				s.deadline = nil
				continue
			}
			s.log.Error("workers not reaped after SIGKILL", zap.Int("workers", len(s.procs)))
			return 1
		}
		s.publish()
		if (s.mode != running && s.mode != listenersDrained || s.handedOver()) && len(s.procs) == 0 {
			s.log.Info("exiting")
			if s.up != nil {
				s.up.conn.Close() // last: every handed-off connection went through it
			}
			return s.exitCode
		}
	}
}

// later runs f on the event loop after d, unless the loop has ended.
func (s *Supervisor) later(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case s.calls <- f:
		case <-s.done:
		}
	})
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
		switch {
		case s.mode == stopping || p.g.state == genFailed:
			s.kill(p)
		case s.mode == draining || s.mode == listenersDrained || p.g.state == genDraining:
			s.drainWorker(p)
		}
	case evReady:
		p.ready = true
		s.log.Info("worker ready", s.procFields(p)...)
		s.checkReady(p.g)
	case evExited:
		s.exited(p, e)
	case evHandoff:
		s.forwardHandoff(p, e.msg)
	case evStoppedAccepting:
		p.stopped = true
		s.drainStopped(p.g, false)
	case evStartFailed:
		if len(e.msg.Body) <= hotrestart.MaxStartFailedBody {
			p.startErr = string(e.msg.Body)
		}
	}
}

// closeParent closes the upgrade channel to the previous supervisor, if it
// is still open, and the control socket it passed, if never taken.
func (s *Supervisor) closeParent() {
	if p := s.parent; p != nil {
		p.conn.Close()
		p.state.CloseFDs()
		if p.adminLn != nil {
			p.adminLn.Close()
		}
	}
}

// drainWorker tells p to drain. A worker of a generation that a newer one
// replaced may hand its idle connections over; at shutdown there is no one
// to take them.
func (s *Supervisor) drainWorker(p *proc) {
	if !s.canHandOff(p.g) || p.conn == nil {
		s.send(p, hotrestart.TypeDrain)
		return
	}
	if err := p.conn.Send(hotrestart.Message{Type: hotrestart.TypeDrain, Body: hotrestart.DrainHandoffTo(s.successor())}); err != nil {
		s.log.Warn("cannot reach worker", append(s.procFields(p), zap.String("message", "drain"), zap.Error(err))...)
		s.kill(p)
	}
}

// successor is the generation that serves in place of the draining ones:
// the new supervisor's after an upgrade, else the serving one (0 if none).
func (s *Supervisor) successor() int {
	switch {
	case s.handedOver():
		return s.up.newGen
	case s.cur != nil:
		return s.cur.num
	}
	return 0
}

// canHandOff reports whether the workers of g, told to drain now, may hand
// their idle connections over: to a newer generation of this supervisor,
// or to the supervisor that took over in an upgrade.
func (s *Supervisor) canHandOff(g *generation) bool {
	if s.handedOver() {
		return !s.up.closed
	}
	return s.mode == running && s.cur != nil && s.cur.num > g.num
}

// forwardHandoff passes a connection handed off by a draining worker to
// the supervisor that took over in an upgrade, or to a ready worker of the
// serving generation: the one in the same slot if there is one, else the
// next ready one. The supervisor's copy of the socket is closed either way;
// without a taker the connection is lost, which happens only if the serving
// generation has no ready worker at all.
func (s *Supervisor) forwardHandoff(from *proc, m hotrestart.Message) {
	defer m.CloseFDs()
	if s.forwardToSuccessor(m) {
		return
	}
	g := s.cur
	if g == nil || g.num <= from.g.num || g.state != genServing {
		s.log.Warn("handoff without a newer generation, connection closed", s.procFields(from)...)
		return
	}
	if !s.handToWorker(from.slot, m) {
		s.log.Warn("no ready worker to take a handed-off connection, closed", s.procFields(from)...)
	}
}

// handToWorker sends a handed-off connection to a ready worker of the
// serving generation, trying slots from slot on. It does not close m's
// descriptors.
func (s *Supervisor) handToWorker(slot int, m hotrestart.Message) bool {
	g := s.cur
	if g == nil || g.state != genServing || len(g.slots) == 0 {
		return false
	}
	for k := range g.slots {
		to := g.slots[(slot+k)%len(g.slots)].proc
		if to == nil || !to.ready || to.conn == nil {
			continue
		}
		if err := to.conn.Send(m); err == nil {
			return true
		}
	}
	return false
}

// exited forgets p and, while running, restarts its slot if p belongs to
// the serving generation, or fails the reload if p belongs to a starting
// one.
func (s *Supervisor) exited(p *proc, e event) {
	delete(s.procs, p)
	if p.conn != nil {
		p.conn.Close()
	}
	g := p.g
	g.live--
	s.stats.reaped(g, p.slot)
	s.hosts.reaped(g, p.slot)
	defer s.generationGone(g)
	if p.stopping {
		defer s.drainStopped(g, false) // the others may wait for it no more
	}
	fields := s.procFields(p)
	reason := "start failed"
	switch {
	case e.state != nil:
		fields = append(fields, exitFields(e.state)...)
		fields = append(fields, zap.Duration("uptime", time.Since(p.started).Round(time.Millisecond)))
		reason = e.state.String()
	case e.err != nil:
		fields = append(fields, zap.String("reason", "start failed"), zap.Error(e.err))
	}
	if p.startErr != "" {
		// What the worker said, with how it ended.
		reason = p.startErr + "; " + reason
	}
	sl := &g.slots[p.slot]
	switch {
	case s.parent != nil && !s.parent.committed && g == s.cur:
		s.log.Warn("worker exited", fields...)
		s.abortTakeover(fmt.Errorf("supervisor: generation %d: worker slot %d exited before it was ready (%s)", g.num, p.slot, reason))
	case g == s.next:
		s.log.Warn("worker exited", fields...)
		s.abortReload(fmt.Errorf("supervisor: generation %d: worker slot %d exited before it was ready (%s)", g.num, p.slot, reason), true)
	case s.mode == running && g == s.cur && !s.everReady && !p.ready && sl.proc == p:
		s.log.Warn("worker exited", fields...)
		s.failStart(fmt.Errorf("supervisor: worker slot %d exited before it was ready (%s)", p.slot, reason))
	case s.mode != running || g != s.cur || sl.proc != p || g.state != genServing:
		s.log.Info("worker exited", fields...)
		if g.state == genDraining && g.live == 0 {
			g.stopTimer()
			s.log.Info("generation drained", zap.Int("generation", g.num))
		}
	default:
		s.restart(p, fields)
	}
}

// failStart gives up starting: a worker of the first generation exited
// before it was ever ready, which is the config or the environment (an
// access log that cannot be opened, a key file the workers cannot read),
// not bad luck, so restarting it would crash-loop with the service never
// ready (and systemd waiting for READY=1 until TimeoutStartSec). As Envoy
// and nginx do, the supervisor exits 1 instead: the reason is in the log,
// and systemd reports the start as failed (and retries per Restart=).
func (s *Supervisor) failStart(err error) {
	s.log.Error("start failed", zap.Error(err))
	s.sdNotify(s.notify.Status("start failed: " + err.Error()))
	s.exitCode = 1
	s.stop()
	s.deadline = time.After(reapWait)
}

// restart schedules a new process for p's slot after the slot's backoff.
func (s *Supervisor) restart(p *proc, fields []zap.Field) {
	g := p.g
	sl := &g.slots[p.slot]
	sl.proc = nil
	uptime := time.Duration(0)
	if !p.started.IsZero() {
		uptime = time.Since(p.started)
	}
	d := sl.backoff.delay(uptime)
	s.stats.workerRestarted()
	s.log.Warn("worker exited", append(fields, zap.Duration("backoff", d))...)
	if d == 0 {
		s.spawn(g, p.slot)
		return
	}
	i := p.slot
	sl.timer = s.later(d, func() {
		sl.timer = nil
		if s.mode == running && g == s.cur && sl.proc == nil {
			s.spawn(g, i)
		}
	})
}

// checkReady acts once every slot of g has a ready worker: the first time
// for the first generation, it logs "ready" and tells systemd; for a
// reload's generation, it completes the reload.
func (s *Supervisor) checkReady(g *generation) {
	if !g.ready() {
		return
	}
	switch {
	case g == s.next:
		s.completeReload(g)
	case g == s.cur && s.parent != nil && !s.parent.committed:
		s.commitTakeover(g)
	case g == s.cur && !s.everReady:
		s.everReady = true
		s.log.Info("ready", zap.Int("workers", len(g.slots)), zap.Int("generation", g.num))
		s.sdNotify(s.notify.Ready(g.summary()))
	}
}

// drain starts a graceful shutdown: a reload in progress is abandoned, the
// supervisor lets go of the listening sockets and asks every worker to
// drain.
func (s *Supervisor) drain() {
	s.sdNotify(s.notify.Stopping("draining"))
	s.drainWorkers()
}

// drainWorkers closes the listening sockets and asks every worker to
// drain; none is restarted.
func (s *Supervisor) drainWorkers() {
	s.stats.stopped()
	if s.next != nil {
		s.abortReload(errShuttingDown, false)
	}
	if s.up != nil && !s.up.committed {
		s.failUpgrade(errShuttingDown)
	}
	s.mode = draining
	s.cur.cancelRestarts()
	s.closeAllSockets()
	for p := range s.procs {
		p.stopping = false
		if p.pid != 0 {
			s.send(p, hotrestart.TypeDrain)
		}
	}
}

// stop kills every worker.
func (s *Supervisor) stop() {
	if s.mode == running && !s.handedOver() {
		s.sdNotify(s.notify.Stopping("stopping"))
		s.stats.stopped()
	}
	if s.next != nil {
		s.abortReload(errShuttingDown, false)
	}
	if s.up != nil && !s.up.committed {
		s.failUpgrade(errShuttingDown)
	}
	s.mode = stopping
	s.cur.cancelRestarts()
	s.closeAllSockets()
	s.killAll()
}

// killAll kills every worker.
func (s *Supervisor) killAll() {
	for p := range s.procs {
		p.stopping = false
		if p.pid != 0 {
			s.kill(p)
		}
	}
}

// drainListeners implements /drain_listeners: like drain, the listening
// sockets are closed and every worker drains its connections, but the
// supervisor and its admin API stay up (mode listenersDrained) until a
// SIGTERM or SIGINT, as Envoy's server keeps running after it. Without
// graceful the workers are killed at once.
func (s *Supervisor) drainListeners(graceful bool) {
	s.sdNotify(s.notify.Status("listeners drained by the admin API"))
	s.drainWorkers()
	s.mode = listenersDrained
	if graceful {
		s.deadline = time.After(s.cur.cfg.Server.DrainTimeout.Duration)
		return
	}
	s.killAll()
	s.deadline = nil
}

// errShuttingDown answers requests that arrive during a shutdown.
var errShuttingDown = errors.New("supervisor: shutting down")

// closeAllSockets closes the supervisor's copies of every socket.
func (s *Supervisor) closeAllSockets() {
	if s.cur != nil {
		s.cur.closeSockets()
	}
	if s.next != nil {
		s.next.closeSockets()
	}
}

// sdNotify logs a failed notification; the service manager being
// unreachable never stops the supervisor.
func (s *Supervisor) sdNotify(err error) {
	if err != nil {
		s.log.Warn("sd_notify failed", zap.Error(err))
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
	return []zap.Field{zap.Int("slot", p.slot), zap.Int("pid", p.pid), zap.Int("generation", p.g.num)}
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

// generationGone releases what g holds once its last worker is gone and no
// worker will start for it again: its stats slabs, and the plugin processes
// only it used. Called by the loop.
func (s *Supervisor) generationGone(g *generation) {
	if g.live > 0 || (s.mode == running && !s.handedOver() && (g == s.cur || g == s.next)) {
		return
	}
	s.stats.release(g, !s.handedOver())
	reclaim := !s.handedOver()
	for p := range s.procs {
		if p.g != s.cur && p.g != s.next {
			reclaim = false
		}
	}
	s.hosts.release(g, reclaim)
	s.stopUnusedPlugins()
}
