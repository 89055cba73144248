// Package worker is a sluice data-plane process (sluice worker), started only
// by the supervisor.
//
// A worker finds its control channel on fd 3, reads the Hello message (the
// config bytes, its slot and generation, and one listening socket per
// listener), builds a server generation, serves every listener, and sends
// Ready. Then it waits on the control channel: Drain stops accepting, lets
// in-flight requests finish, and the worker exits 0 as soon as its last
// connection is gone (at the latest at server.drain_timeout); Stop closes
// everything and exits 0; the end of the channel (the supervisor is gone)
// closes everything and exits 1 at once, as Pdeathsig would. SIGTERM drains as Drain does; SIGINT, SIGHUP, SIGUSR1
// and SIGUSR2 are ignored, since the supervisor acts on them for the whole
// process tree. GOMAXPROCS comes from the environment the supervisor sets.
//
// The Hello also carries the supervisor's stats region and the worker's
// slab in it (the data plane records there, so counters survive the
// worker), the host-state region (host health, outlier state, circuit
// breakers and token buckets shared by every worker) and the worker's
// index in it, the TLS session ticket keys, the plugin processes to attach to,
// and the runtime log level. While it runs, the supervisor may send: Log
// level (a new level), Reopen logs (reopen every access log file; the
// worker keeps one accesslog.Files for its life) and Plugin reattach (a
// plugin was restarted, or stopped).
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/conn"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/server"
	"github.com/sluice-proxy/sluice/gateway/stats"
	"github.com/sluice-proxy/sluice/gateway/tlsconn"
	"github.com/sluice-proxy/sluice/gateway/tracing"
	"github.com/sluice-proxy/sluice/hotrestart"
	"github.com/sluice-proxy/sluice/supervisor"
)

// controlFD is the descriptor on which the supervisor passes the control
// channel.
const controlFD = 3

// spanFlushTimeout bounds the send of the trace spans still queued when a
// drained worker exits; the supervisor allows a drained worker 5 s past
// drain_timeout before it kills it.
const spanFlushTimeout = time.Second

// Options identify the worker, as its command line does. They must match
// the Hello the supervisor sends.
type Options struct {
	Slot       int
	Generation int
}

// serveResult is what one listener's Serve returned.
type serveResult struct {
	name string
	err  error
}

// Run runs the worker until it is told to stop and returns the process
// exit code.
func Run(opts Options) int {
	// SIGPIPE too: a log line written once nobody reads stderr any more
	// (a log pipe closed) must fail, not kill the worker.
	signal.Ignore(unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, unix.SIGTERM)

	conn, err := openControl()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluice %v (workers are started by \"sluice run\" only)\n", err)
		return 2
	}
	defer conn.Close()
	w, err := start(conn, opts)
	if err != nil {
		// The reason, for the supervisor to pass on to whoever started
		// this generation (sluice run, reload or upgrade).
		why := err.Error()
		if len(why) > hotrestart.MaxStartFailedBody {
			why = why[:hotrestart.MaxStartFailedBody]
		}
		_ = conn.Send(hotrestart.Message{Type: hotrestart.TypeStartFailed, Body: []byte(why)})
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintf(os.Stderr, "sluice worker: slot %d generation %d: %v\n", opts.Slot, opts.Generation, err)
		}
		return 1
	}
	defer w.log.Sync()
	defer w.logs.Close() // flushes what is buffered
	if stop := startCPUProfile(w.log, opts); stop != nil {
		defer stop()
	}
	return w.loop(conn, terms)
}

// EnvCPUProfile names the environment variable that turns on a Go CPU
// profile of every worker, for performance work (docs/benchmarks.md): each
// worker writes its profile to the variable's value followed by
// ".slot<N>.gen<G>" when it exits (a drain: SIGTERM to the supervisor, a reload, an upgrade; a worker that
// crashes or is killed writes nothing), and its allocation profile to the
// same path with ".allocs" appended. Unset in production.
const EnvCPUProfile = "SLUICE_CPUPROFILE"

// startCPUProfile starts the worker's CPU profile when EnvCPUProfile is set
// and returns the function that stops and writes it.
func startCPUProfile(log *zap.Logger, opts Options) func() {
	base := os.Getenv(EnvCPUProfile)
	if base == "" {
		return nil
	}
	path := fmt.Sprintf("%s.slot%d.gen%d", base, opts.Slot, opts.Generation)
	f, err := os.Create(path)
	if err != nil {
		log.Warn("cpu profile not started", zap.Error(fmt.Errorf("worker: %w", err)))
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		log.Warn("cpu profile not started", zap.Error(fmt.Errorf("worker: %w", err)))
		return nil
	}
	log.Info("cpu profile started", zap.String("path", path))
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Warn("cpu profile not written", zap.Error(fmt.Errorf("worker: %w", err)))
		}
		// The allocations since the worker started, next to it.
		a, err := os.Create(path + ".allocs")
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(a, 0)
			if cerr := a.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			log.Warn("allocation profile not written", zap.Error(fmt.Errorf("worker: %w", err)))
		}
	}
}

// openControl returns the control channel on fd 3, or an error if fd 3 is
// not one.
func openControl() (*hotrestart.Conn, error) {
	f := os.NewFile(controlFD, "control")
	if f == nil {
		return nil, errors.New("worker: fd 3 is not open")
	}
	defer f.Close()
	conn, err := hotrestart.NewConn(f)
	if err != nil {
		return nil, fmt.Errorf("worker: fd 3 is not the control socket: %w", err)
	}
	return conn, nil
}

// loggedError is an error start already logged.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// worker is a started worker. Its fields are set by start and then only
// read.
type worker struct {
	log    *zap.Logger
	level  zap.AtomicLevel
	logs   *accesslog.Files
	region *stats.Region // nil without one
	cfg    *config.Config
	conn   *hotrestart.Conn
	gen    *server.Generation
	served chan serveResult
	// handoffOK is set by a Drain that lets connections move to the
	// serving generation.
	handoffOK atomic.Bool
}

// start reads the Hello, builds the generation, serves every listener and
// sends Ready.
func start(conn *hotrestart.Conn, opts Options) (_ *worker, err error) {
	m, err := conn.Recv()
	if err != nil {
		return nil, fmt.Errorf("worker: read hello: %w", err)
	}
	h, err := hotrestart.DecodeHello(m)
	if err != nil {
		return nil, err
	}
	var region *stats.Region
	if h.StatsFD >= 0 {
		if region, err = stats.OpenRegion(h.StatsFD); err != nil {
			unix.Close(h.StatsFD)
		}
	}
	var hosts *hoststate.Region
	if h.HostStateFD > 0 {
		var herr error
		if hosts, herr = hoststate.Open(h.HostStateFD); herr != nil {
			unix.Close(h.HostStateFD)
			return nil, fmt.Errorf("worker: host-state region: %w", herr)
		}
	}
	started := false
	defer func() {
		if !started && region != nil {
			region.Close()
		}
	}()
	files := make([]*os.File, len(h.Listeners))
	for i, l := range h.Listeners {
		files[i] = os.NewFile(uintptr(l.FD), "listener "+l.Name)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if h.Slot != opts.Slot || h.Generation != opts.Generation {
		return nil, fmt.Errorf("worker: hello is for slot %d generation %d", h.Slot, h.Generation)
	}
	cfg, err := config.Parse(h.ConfigPath, h.Config)
	if err != nil {
		return nil, err
	}
	log, level, err := supervisor.NewLevelLogger(cfg.Log)
	if err != nil {
		return nil, err
	}
	if h.LogLevel != "" {
		level.UnmarshalText([]byte(h.LogLevel))
	}
	log = log.With(zap.Int("slot", h.Slot), zap.Int("pid", os.Getpid()), zap.Int("generation", h.Generation))
	defer func() {
		if err != nil {
			// With a logger, the reason is a JSON line like every other
			// one (the journal's readers parse them), not plain text.
			log.Error("cannot start", zap.Error(err))
			err = loggedError{err}
		}
	}()
	slab, err := workerSlab(region, err, cfg, h.StatsSlab)
	if err != nil {
		return nil, err
	}
	for name, ra := range h.Plugins {
		setPlugin(log, name, ra)
	}
	for name, hosts := range h.ClusterHosts {
		// No manager is built yet: this only records the set.
		_ = cluster.SetResolvedHosts(name, hosts)
	}
	srv := slab.Server()
	logs := accesslog.NewFiles(accesslog.Options{Dropped: srv.AccessLogDropped, WriteFailed: srv.AccessLogWriteFailed, ReopenFailed: srv.AccessLogReopenFail})
	w := &worker{log: log, level: level, logs: logs, region: region, cfg: cfg, conn: conn}
	g, err := server.Build(cfg, server.Options{Logger: log, Generation: h.Generation, Slot: h.Slot, Handoff: w.handoff,
		Stats: slab, AccessLogs: logs, TicketKeys: tlsconn.TicketKeys(h.TicketKeys),
		HostState: hosts, HostStateWorker: h.HostStateWorker})
	if err != nil {
		logs.Close()
		return nil, err
	}
	lns, err := openListeners(cfg, h.Listeners, files)
	if err != nil {
		g.Close()
		return nil, err
	}
	for i := range lns {
		// Before ready: the workers of the slot's other generation pass
		// this one new QUIC connections from when it reports ready.
		if lns[i].pc != nil {
			if lns[i].pc, err = g.RoutePacket(h.Listeners[i].Name, lns[i].pc); err != nil {
				for j, ln := range lns {
					if j != i { // RoutePacket closed lns[i]
						ln.close()
					}
				}
				g.Close()
				return nil, err
			}
		}
	}
	w.gen, w.served = g, make(chan serveResult, len(lns))
	for i, ln := range lns {
		name := h.Listeners[i].Name
		go func() { w.served <- serveResult{name, ln.serve(g, name)} }()
	}
	if err := conn.Send(hotrestart.Message{Type: hotrestart.TypeReady}); err != nil {
		g.Close()
		return nil, err
	}
	log.Info("worker serving", zap.Int("listeners", len(lns)), zap.Int("gomaxprocs", runtime.GOMAXPROCS(0)),
		zap.Int("stats_slab", h.StatsSlab))
	started = true
	return w, nil
}

// socket is one of the worker's listening sockets: a TCP listener, or
// the UDP socket of a udp (HTTP/3) listener.
type socket struct {
	ln net.Listener
	pc net.PacketConn
}

func (s socket) serve(g *server.Generation, name string) error {
	if s.pc != nil {
		return g.ServePacket(name, s.pc)
	}
	return g.Serve(name, s.ln)
}

func (s socket) close() {
	if s.pc != nil {
		s.pc.Close()
	} else {
		s.ln.Close()
	}
}

// openListeners turns the Hello's descriptors into sockets, by the kind of
// their listener in cfg (net.FilePacketConn for a udp listener).
func openListeners(cfg *config.Config, fds []hotrestart.ListenerFD, files []*os.File) ([]socket, error) {
	udp := map[string]bool{}
	for i := range cfg.Listeners {
		udp[cfg.Listeners[i].Name] = cfg.Listeners[i].UDP()
	}
	socks := make([]socket, len(files))
	for i, f := range files {
		var err error
		if udp[fds[i].Name] {
			socks[i].pc, err = net.FilePacketConn(f)
		} else {
			socks[i].ln, err = net.FileListener(f)
		}
		if err != nil {
			for _, s := range socks[:i] {
				s.close()
			}
			return nil, fmt.Errorf("worker: listener %q: %w", fds[i].Name, err)
		}
	}
	return socks, nil
}

// workerSlab returns the worker's slab of region, after checking that the
// region's schema is the one the worker's config gives. A nil region (a
// supervisor without one) gives a nil slab: the build then records into a
// private region.
func workerSlab(region *stats.Region, openErr error, cfg *config.Config, i int) (*stats.Slab, error) {
	if openErr != nil {
		return nil, fmt.Errorf("worker: stats region: %w", openErr)
	}
	if region == nil {
		return nil, nil
	}
	schema, err := stats.FromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("worker: stats: %w", err)
	}
	if schema.Hash() != region.Schema().Hash() {
		return nil, errors.New("worker: the stats region's schema is not the config's")
	}
	slab := region.Slab(i)
	if slab == nil {
		return nil, fmt.Errorf("worker: stats region has no slab %d", i)
	}
	return slab, nil
}

// setPlugin records where the named plugin runs (ra, go-plugin reattach
// info as JSON), or forgets it when ra is empty.
func setPlugin(log *zap.Logger, name string, ra json.RawMessage) {
	if len(ra) == 0 {
		plugin.Default.Delete(name)
		return
	}
	var r plugin.Reattach
	if err := json.Unmarshal(ra, &r); err != nil {
		log.Warn("bad plugin reattach info", zap.String("plugin", name), zap.Error(err))
		return
	}
	plugin.Default.Set(name, r)
	log.Debug("plugin attached", zap.String("plugin", name), zap.Int("plugin_pid", r.Pid))
}

// loop waits for the supervisor's orders, a signal, or a failed listener.
func (w *worker) loop(conn *hotrestart.Conn, terms <-chan os.Signal) int {
	msgs := make(chan hotrestart.Message)
	readErr := make(chan error, 1)
	go func() {
		for {
			m, err := conn.Recv()
			if err != nil {
				readErr <- err
				return
			}
			msgs <- m
		}
	}()
	var drained chan struct{}
	stopped := false // told to stop accepting: the listeners' ends are expected
	drain := func(why string) {
		if drained != nil {
			return
		}
		// Logged once accepting has stopped, so that "draining" means no
		// new connection is taken (tests and operators rely on it).
		w.gen.StopAccepting()
		w.log.Info("draining", zap.String("cause", why), zap.Duration("drain_timeout", w.cfg.Server.DrainTimeout.Duration))
		drained = make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Server.DrainTimeout.Duration)
			defer cancel()
			w.gen.Drain(ctx)
			close(drained)
		}()
	}
	for {
		select {
		case m := <-msgs:
			switch m.Type {
			case hotrestart.TypeDrain:
				if handoff, successor := hotrestart.DecodeDrain(m.Body); handoff {
					w.handoffOK.Store(true)
					if successor > 0 {
						w.gen.SetSuccessor(successor)
					}
				}
				drain("drain message")
			case hotrestart.TypeSuccessor:
				if gen, err := hotrestart.DecodeSuccessor(m.Body); err != nil {
					w.log.Warn("bad successor message", zap.Error(err))
				} else {
					w.gen.SetSuccessor(gen)
				}
			case hotrestart.TypeStopAccepting:
				w.gen.StopAccepting()
				stopped = true
				w.log.Info("stopped accepting")
				if err := w.conn.Send(hotrestart.Message{Type: hotrestart.TypeStoppedAccepting}); err != nil {
					w.log.Warn("cannot reach supervisor", zap.Stringer("message", hotrestart.TypeStoppedAccepting), zap.Error(err))
				}
			case hotrestart.TypeHandoff:
				w.adopt(m)
			case hotrestart.TypeLogLevel:
				if err := w.level.UnmarshalText(m.Body); err != nil {
					w.log.Warn("bad log level", zap.ByteString("level", m.Body))
				} else {
					w.log.Info("log level changed", zap.Stringer("level", w.level.Level()))
				}
			case hotrestart.TypeReopenLogs:
				if err := w.logs.Reopen(); err != nil {
					w.log.Error("cannot reopen access logs", zap.Error(err))
				} else {
					w.log.Info("access logs reopened")
				}
			case hotrestart.TypePluginReattach:
				if p, err := hotrestart.DecodePluginReattach(m); err != nil {
					w.log.Warn("bad plugin reattach message", zap.Error(err))
				} else {
					setPlugin(w.log, p.Name, p.Reattach)
				}
			case hotrestart.TypeClusterHosts:
				if c, err := hotrestart.DecodeClusterHosts(m); err != nil {
					w.log.Warn("bad cluster hosts message", zap.Error(err))
				} else if err := cluster.SetResolvedHosts(c.Cluster, c.Hosts); err != nil {
					w.log.Error("cannot update cluster hosts", zap.String("cluster", c.Cluster), zap.Error(err))
				} else {
					w.log.Info("cluster hosts updated", zap.String("cluster", c.Cluster), zap.Strings("hosts", c.Hosts))
				}
			case hotrestart.TypeTicketKeys:
				if keys, err := hotrestart.DecodeTicketKeys(m); err != nil {
					w.log.Warn("bad ticket keys message", zap.Error(err))
				} else {
					w.gen.SetTicketKeys(keys)
					w.log.Info("TLS ticket keys updated", zap.Int("keys", len(keys)))
				}
			case hotrestart.TypeStop:
				w.log.Info("stopping")
				w.gen.Close()
				return 0
			default:
				m.CloseFDs()
				w.log.Debug("ignoring control message", zap.Stringer("type", m.Type))
			}
		case <-terms:
			drain("SIGTERM")
		case <-drained:
			w.log.Info("drained, exiting")
			ctx, cancel := context.WithTimeout(context.Background(), spanFlushTimeout)
			tracing.Flush(ctx)
			cancel()
			return 0
		case r := <-w.served:
			if drained != nil || stopped {
				continue
			}
			w.log.Error("listener stopped serving", zap.String("listener", r.name), zap.Error(r.err))
			w.gen.Close()
			return 1
		case err := <-readErr:
			if err == io.EOF {
				w.log.Warn("supervisor gone, exiting")
			} else {
				w.log.Error("control channel failed, exiting", zap.Error(err))
			}
			w.gen.Close()
			return 1
		}
	}
}

// handoff sends a drained connection's socket and read-ahead bytes to the
// supervisor, which passes them to the serving generation. It is called from
// connection goroutines; hotrestart.Conn.Send is safe for concurrent use.
func (w *worker) handoff(listener string, f *os.File, readAhead []byte) error {
	if !w.handoffOK.Load() {
		return conn.ErrNoTaker // a drain for a shutdown
	}
	h := hotrestart.Handoff{Listener: listener, ReadAhead: readAhead}
	return w.conn.Send(h.Message(int(f.Fd())))
}

// adopt serves a connection handed off by a previous generation.
func (w *worker) adopt(m hotrestart.Message) {
	h, err := hotrestart.DecodeHandoff(m)
	if err != nil {
		m.CloseFDs()
		w.log.Warn("bad handoff message", zap.Error(err))
		return
	}
	f := os.NewFile(uintptr(m.FDs[0]), "handed-off connection")
	if err := w.gen.Adopt(h.Listener, f, h.ReadAhead); err != nil {
		w.log.Warn("cannot adopt connection", zap.Error(err))
	}
}
