package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hotrestart"
	"github.com/sluice-proxy/sluice/supervisor/sdnotify"
)

// A binary upgrade, seen from the new supervisor (started by the old one
// with hotrestart.EnvUpgradeFD set): it sends UpgradeHello, receives the old
// supervisor's UpgradeState, loads its config, builds its first generation
// on the inherited sockets, and once every worker is ready sends
// UpgradeReady, takes over the control socket and tells systemd
// MAINPID=<its pid> and READY=1. Until then it tells systemd nothing, and
// any failure makes it send UpgradeFailed and exit 1. Connections that the
// old workers hand off arrive over the channel until the old supervisor
// exits and closes it.

// parent is the supervisor this one is taking over from. Its fields are
// owned by the event loop once the loop runs.
type parent struct {
	pid       int
	conn      *hotrestart.Conn
	state     hotrestart.UpgradeState // ControlFD is taken at the commit
	notify    *sdnotify.Notifier      // the real notifier, used from the commit on
	committed bool
	next      int          // round robin over slots for handed-off connections
	adminLn   net.Listener // the admin listener passed over, served from the commit on
}

// openUpgradeChannel returns the upgrade channel that the old supervisor
// passed as the descriptor named in $SLUICE_UPGRADE_FD, and unsets the
// variable. It returns nil when the variable is unset (a plain start).
func openUpgradeChannel() (*hotrestart.Conn, error) {
	v, ok := os.LookupEnv(hotrestart.EnvUpgradeFD)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(hotrestart.EnvUpgradeFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("supervisor: %s=%q is not a descriptor", hotrestart.EnvUpgradeFD, v)
	}
	f := os.NewFile(uintptr(fd), "upgrade")
	if f == nil {
		return nil, fmt.Errorf("supervisor: upgrade channel %d is not open", fd)
	}
	defer f.Close()
	return hotrestart.NewConn(f)
}

// handshake introduces this process to the old supervisor and receives its
// state.
func handshake(conn *hotrestart.Conn, build string) (hotrestart.UpgradeState, hotrestart.Inherited, error) {
	var none hotrestart.Inherited
	if err := conn.Send(hotrestart.UpgradeHello{Version: hotrestart.LocalVersion(), PID: os.Getpid(), Build: build}.Message()); err != nil {
		return hotrestart.UpgradeState{}, none, err
	}
	m, err := conn.Recv()
	if err != nil {
		return hotrestart.UpgradeState{}, none, fmt.Errorf("supervisor: read upgrade state: %w", err)
	}
	if m.Type == hotrestart.TypeUpgradeRefused {
		m.CloseFDs()
		return hotrestart.UpgradeState{}, none, errRefused{string(m.Body)}
	}
	st, err := hotrestart.DecodeUpgradeState(m)
	if err != nil {
		return hotrestart.UpgradeState{}, none, err
	}
	if v := hotrestart.LocalVersion(); st.Version != v {
		st.CloseFDs()
		return hotrestart.UpgradeState{}, none, fmt.Errorf("supervisor: incompatible running supervisor: it speaks upgrade protocol version %d, this binary %d", st.Version, v)
	}
	// Then the stats regions, ticket keys and admin listener.
	if m, err = conn.Recv(); err != nil {
		st.CloseFDs()
		return hotrestart.UpgradeState{}, none, fmt.Errorf("supervisor: read stats state: %w", err)
	}
	in, err := hotrestart.DecodeInherited(m)
	if err != nil {
		st.CloseFDs()
		return hotrestart.UpgradeState{}, none, err
	}
	return st, in, nil
}

// errRefused is the old supervisor's refusal of the handshake; it knows
// why already.
type errRefused struct{ reason string }

func (e errRefused) Error() string { return "supervisor: upgrade refused: " + e.reason }

// failHandshake tells the old supervisor why this process exits without
// serving.
func failHandshake(conn *hotrestart.Conn, err error) {
	var r errRefused
	if !errors.As(err, &r) {
		conn.Send(hotrestart.ReasonMessage(hotrestart.TypeUpgradeFailed, err.Error()))
	}
	conn.Close()
}

// inheritedGroups turns the old supervisor's socket groups into groups of
// this process, which owns their descriptors.
func inheritedGroups(st *hotrestart.UpgradeState) []*socketGroup {
	var gs []*socketGroup
	for i := range st.Groups {
		g := &st.Groups[i]
		gs = append(gs, &socketGroup{name: g.Name, key: g.Key, addr: g.Addr, shared: g.Shared, fds: g.FDs})
		g.FDs = nil
	}
	return gs
}

// readParent passes the messages of the upgrade channel to the loop until
// the old supervisor closes it.
func (s *Supervisor) readParent(p *parent) {
	for {
		m, err := p.conn.Recv()
		if err != nil {
			s.call(func() { s.parentGone(p, err) })
			return
		}
		s.call(func() { s.parentMessage(p, m) })
	}
}

// parentMessage handles a message of the old supervisor: a handed-off
// connection goes to a ready worker.
func (s *Supervisor) parentMessage(p *parent, m hotrestart.Message) {
	defer m.CloseFDs()
	if m.Type != hotrestart.TypeHandoff || !p.committed {
		return
	}
	p.next++
	if !s.handToWorker(p.next, m) {
		s.log.Warn("no ready worker to take a handed-off connection, closed", zap.Int("previous_pid", p.pid))
	}
}

// parentGone notes the end of the upgrade channel: before the commit it
// fails the takeover; after it, the old supervisor has exited and this one
// runs on its own.
func (s *Supervisor) parentGone(p *parent, err error) {
	if s.parent != p {
		return
	}
	p.conn.Close()
	if !p.committed {
		s.abortTakeover(fmt.Errorf("supervisor: the running supervisor (pid %d) closed the upgrade channel: %v", p.pid, err))
		return
	}
	s.parent = nil
	s.stats.previousGone()
	s.hosts.previousGone()
	s.log.Info("previous supervisor exited", zap.Int("previous_pid", p.pid))
}

// abortTakeover gives up the upgrade: the old supervisor learns why, the
// workers are killed and the process exits 1.
func (s *Supervisor) abortTakeover(err error) {
	p := s.parent
	s.log.Error("upgrade failed", zap.Error(err), zap.Int("previous_pid", p.pid))
	p.conn.Send(hotrestart.ReasonMessage(hotrestart.TypeUpgradeFailed, err.Error()))
	p.conn.Close()
	s.parent = nil
	s.exitCode = 1
	s.stop()
}

// commitTakeover runs once every worker of the first generation g is
// ready: the old supervisor is told to drain, the control socket is taken
// over, and systemd learns the new main process.
func (s *Supervisor) commitTakeover(g *generation) {
	p := s.parent
	if err := p.conn.Send(hotrestart.UpgradeReady{PID: os.Getpid(), Generation: g.num}.Message()); err != nil {
		s.abortTakeover(fmt.Errorf("supervisor: tell the running supervisor (pid %d) to drain: %w", p.pid, err))
		return
	}
	p.committed = true
	s.everReady = true
	s.takeControl(g.cfg.Server.ControlSocket, p)
	s.openAdmin(g.cfg, p.adminLn)
	p.adminLn = nil
	s.startStatsd(g.cfg, s.stats.snapshot())
	s.notify = p.notify
	s.log.Info("ready", zap.Int("workers", len(g.slots)), zap.Int("generation", g.num), zap.Int("previous_pid", p.pid))
	s.sdNotify(s.notify.Send("MAINPID="+strconv.Itoa(os.Getpid()), "READY=1", "STATUS="+g.summary()))
}

// takeControl serves the control socket inherited from the old supervisor,
// or, if the config names another path, a new one there.
func (s *Supervisor) takeControl(path string, p *parent) {
	fd, oldPath := p.state.ControlFD, p.state.ControlPath
	p.state.ControlFD = -1
	if fd >= 0 && oldPath == path {
		f := os.NewFile(uintptr(fd), "control")
		ln, err := net.FileListener(f)
		f.Close()
		if ul, ok := ln.(*net.UnixListener); err == nil && ok {
			ul.SetUnlinkOnClose(true)
			s.control = ul
			s.log.Info("control socket", zap.String("path", path), zap.String("socket", "inherited"))
			go s.serveControl(ul)
			return
		}
		if ln != nil {
			ln.Close()
		}
		s.log.Warn("inherited control socket unusable, creating a new one", zap.String("path", path), zap.Error(err))
	} else if fd >= 0 {
		f := os.NewFile(uintptr(fd), "control")
		f.Close()
		s.log.Warn("server.control_socket changed; the old socket stays until the old supervisor exits",
			zap.String("previous_control_socket", oldPath))
	}
	s.openControl(path)
}
