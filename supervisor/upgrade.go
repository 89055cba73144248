package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/hotrestart"
	"github.com/sluice-proxy/sluice/supervisor/sdnotify"
)

// A binary upgrade, seen from the running ("old") supervisor: it starts the
// binary now at its executable's path as "sluice run -c <config>" with the
// upgrade channel on fd 3 (hotrestart.EnvUpgradeFD names it), answers the
// new supervisor's UpgradeHello with every listening socket and the control
// socket, and waits for UpgradeReady. Then it answers the requester, stops
// serving the control socket, and retires its generation with handoff: the
// idle connections of its workers go over the upgrade channel to the new
// supervisor. It exits as soon as its last worker is gone, closing the
// channel last. Any failure before UpgradeReady kills the new process and
// leaves everything as it was.

// upgradeFD is the descriptor of the upgrade channel in the new supervisor.
const upgradeFD = 3

// upgrade is an upgrade this supervisor started. Its fields are owned by
// the event loop.
type upgrade struct {
	pid       int
	conn      *hotrestart.Conn
	reply     chan<- Response // nil for SIGUSR2, and once answered
	timer     *time.Timer     // readiness timeout
	failure   string          // the reason the new supervisor sent, if any
	committed bool            // the new supervisor serves; ours drains
	exited    bool            // the new process was reaped
	closed    bool            // the channel ended
	newGen    int
}

// handedOver reports whether this supervisor has handed the service over
// to a new one and only waits for its workers to drain.
func (s *Supervisor) handedOver() bool { return s.up != nil && s.up.committed }

// call runs f on the event loop, unless the loop has ended.
func (s *Supervisor) call(f func()) {
	select {
	case s.calls <- f:
	case <-s.done:
	}
}

// startUpgrade starts a binary upgrade on behalf of reply (nil for
// SIGUSR2). The outcome is answered when known. Called by the loop.
func (s *Supervisor) startUpgrade(reply chan<- Response, cause string) {
	var refusal string
	switch {
	case s.mode != running:
		answer(reply, Response{Error: errShuttingDown.Error()})
		return
	case s.handedOver():
		refusal = fmt.Sprintf("supervisor: this supervisor has handed over to pid %d; send the upgrade there", s.up.pid)
	case s.up != nil:
		refusal = fmt.Sprintf("supervisor: upgrade already in progress (new supervisor pid %d is starting)", s.up.pid)
	case s.next != nil && reply == nil:
		// A signal has no one to answer: upgrade once the reload is over.
		s.usr2Pending = true
		s.log.Info("upgrade queued", zap.String("cause", cause), zap.Int("generation", s.next.num),
			zap.String("reason", "reload in progress"))
		return
	case s.next != nil:
		refusal = fmt.Sprintf("supervisor: reload in progress (generation %d is starting); upgrade once it is answered", s.next.num)
	case s.parent != nil:
		refusal = fmt.Sprintf("supervisor: the previous supervisor (pid %d) is still draining; upgrade once it has exited", s.parent.pid)
	case !s.everReady:
		refusal = "supervisor: still starting; upgrade once every worker is ready"
	}
	if refusal != "" {
		s.log.Warn("upgrade refused", zap.String("cause", cause), zap.String("reason", refusal))
		answer(reply, Response{Error: refusal})
		return
	}
	s.sdNotify(s.notify.Reloading("upgrading: starting " + s.exe))
	s.log.Info("upgrading", zap.String("cause", cause), zap.String("executable", s.exe), zap.String("config", s.path))
	u, err := s.spawnUpgrade()
	if err != nil {
		s.upgradeFailed(reply, err)
		return
	}
	u.reply = reply
	s.up = u
	s.log.Info("upgrade started", zap.Int("new_pid", u.pid))
	u.timer = s.later(readyTimeout, func() {
		u.timer = nil
		if s.up == u && !u.committed {
			s.failUpgrade(fmt.Errorf("supervisor: new supervisor (pid %d) not ready within %v", u.pid, readyTimeout))
		}
	})
}

// spawnUpgrade starts the new binary with its end of the upgrade channel
// on fd 3, and the goroutines that read the channel and wait for the
// process.
func (s *Supervisor) spawnUpgrade() (*upgrade, error) {
	local, remote, err := hotrestart.Pair()
	if err != nil {
		return nil, err
	}
	conn, err := hotrestart.NewConn(local)
	local.Close()
	if err != nil {
		remote.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:       s.exe,
		Args:       []string{"sluice", "run", "-c", s.path},
		Env:        upgradeEnv(os.Environ()),
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{remote}, // fd 3
	}
	err = cmd.Start()
	remote.Close()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("supervisor: start %s: %w", s.exe, err)
	}
	u := &upgrade{pid: cmd.Process.Pid, conn: conn}
	read := make(chan struct{})
	go func() {
		defer close(read)
		s.readUpgrade(u)
	}()
	go func() {
		cmd.Wait()
		// Every message the new supervisor sent reaches the loop before
		// its exit does (unless it left the channel to a child of its own).
		select {
		case <-read:
		case <-time.After(killGrace):
		}
		s.call(func() { s.upgradeExited(u, cmd.ProcessState) })
	}()
	return u, nil
}

// upgradeEnv is the new supervisor's environment: the old one's, except
// WATCHDOG_PID (it names the old process; unset means "whoever reads it"),
// with the upgrade channel named.
func upgradeEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, sdnotify.EnvWatchdogPID+"=") || strings.HasPrefix(kv, hotrestart.EnvUpgradeFD+"=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, hotrestart.EnvUpgradeFD+"="+strconv.Itoa(upgradeFD))
}

// readUpgrade passes the messages of the upgrade channel to the loop until
// the channel ends.
func (s *Supervisor) readUpgrade(u *upgrade) {
	for {
		m, err := u.conn.Recv()
		if err != nil {
			s.call(func() { s.upgradeClosed(u, err) })
			return
		}
		s.call(func() { s.upgradeMessage(u, m) })
	}
}

// upgradeMessage handles a message of the new supervisor. Called by the
// loop.
func (s *Supervisor) upgradeMessage(u *upgrade, m hotrestart.Message) {
	if s.up != u {
		m.CloseFDs()
		return
	}
	switch m.Type {
	case hotrestart.TypeUpgradeHello:
		h, err := hotrestart.DecodeUpgradeHello(m)
		if err != nil {
			s.failUpgrade(err)
			return
		}
		s.log.Info("upgrade handshake", zap.Int("new_pid", u.pid), zap.String("new_version", h.Build),
			zap.Int("protocol", h.Version))
		if v := hotrestart.LocalVersion(); h.Version != v {
			reason := fmt.Sprintf("supervisor: incompatible binary: it speaks upgrade protocol version %d, this supervisor %d", h.Version, v)
			u.conn.Send(hotrestart.ReasonMessage(hotrestart.TypeUpgradeRefused, reason))
			s.failUpgrade(errors.New(reason))
			return
		}
		st := s.upgradeState()
		if err := u.conn.Send(st.Message()); err != nil {
			s.failUpgrade(err)
			return
		}
		s.announceSuccessor(st.NextGeneration)
		if err := u.conn.Send(s.inherited().Message()); err != nil {
			s.failUpgrade(err)
		}
	case hotrestart.TypeUpgradeFailed:
		m.CloseFDs()
		u.failure = string(m.Body)
	case hotrestart.TypeUpgradeReady:
		r, err := hotrestart.DecodeUpgradeReady(m)
		if err != nil {
			s.failUpgrade(err)
			return
		}
		s.commitUpgrade(u, r)
	default:
		m.CloseFDs()
	}
}

// upgradeState is what the new supervisor takes over: the serving
// generation's sockets and the control socket.
func (s *Supervisor) upgradeState() hotrestart.UpgradeState {
	st := hotrestart.UpgradeState{
		Version:        hotrestart.LocalVersion(),
		PID:            os.Getpid(),
		NextGeneration: s.lastGen + 1,
		ControlFD:      -1,
	}
	seen := map[int]bool{}
	for p := range s.procs {
		if g := p.g; g.state == genDraining && !seen[g.num] {
			seen[g.num] = true
			st.Draining = append(st.Draining, g.num)
		}
	}
	for _, sg := range s.cur.groups {
		st.Groups = append(st.Groups, hotrestart.SocketGroup{Name: sg.name, Key: sg.key, Addr: sg.addr, Shared: sg.shared, FDs: sg.fds})
	}
	if s.control != nil {
		if raw, err := s.control.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { st.ControlFD = int(fd) })
			st.ControlPath = s.control.Addr().String()
		}
	}
	return st
}

// inherited is what the new supervisor carries on besides sockets: the
// stats regions, the ticket keys, the admin listener. The message refers
// to this process's descriptors.
func (s *Supervisor) inherited() hotrestart.Inherited {
	in := s.stats.handover()
	s.hosts.handover(&in)
	in.TicketKeys = s.tickets.keys
	in.KeysRotated = s.tickets.rotated.UnixNano()
	if in.AdminFD = s.adminFD(); in.AdminFD >= 0 {
		in.AdminAddr = s.cur.cfg.Admin.Address
	}
	return in
}

// commitUpgrade hands the service over to the new supervisor, which serves:
// the requester learns it, the control socket is left to the new one, and
// the serving generation drains, handing its idle connections over.
func (s *Supervisor) commitUpgrade(u *upgrade, r hotrestart.UpgradeReady) {
	u.committed, u.newGen = true, r.Generation
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	// The new supervisor accepts on the control socket from now on; the
	// file stays.
	if s.control != nil {
		s.control.SetUnlinkOnClose(false)
		s.control.Close()
		s.control = nil
	}
	// The new supervisor serves the admin API and pushes to statsd from now
	// on.
	s.closeAdmin()
	s.stopStatsd()
	// The new supervisor runs the health checks and the outlier detector
	// from now on.
	s.hosts.stop()
	old := s.cur
	s.log.Info("upgrade complete", zap.Int("new_pid", r.PID), zap.Int("generation", r.Generation),
		zap.Int("previous_generation", old.num))
	answer(u.reply, Response{OK: true, Generation: r.Generation, PID: r.PID})
	u.reply = nil
	s.retire(old)
}

// upgradeClosed notes the end of the upgrade channel. Before the commit the
// process's exit (which follows) fails the upgrade; after it, handed-off
// connections have nowhere to go and close.
func (s *Supervisor) upgradeClosed(u *upgrade, err error) {
	u.closed = true
	if s.up == u && u.committed {
		s.log.Warn("new supervisor closed the upgrade channel", zap.Int("new_pid", u.pid), zap.Error(err))
	}
}

// upgradeExited notes that the new process ended.
func (s *Supervisor) upgradeExited(u *upgrade, st *os.ProcessState) {
	u.exited = true
	if s.up != u {
		return
	}
	if u.committed {
		s.log.Warn("new supervisor exited", append([]zap.Field{zap.Int("new_pid", u.pid)}, exitFields(st)...)...)
		return
	}
	reason := u.failure
	if reason == "" {
		reason = "supervisor: new supervisor exited before it was ready"
	}
	s.failUpgrade(fmt.Errorf("%s (pid %d: %s)", reason, u.pid, st))
}

// failUpgrade abandons the upgrade in progress: the new process is killed
// (its workers die with it) and the serving generation carries on
// untouched.
func (s *Supervisor) failUpgrade(err error) {
	u := s.up
	s.up = nil
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	if !u.exited {
		if kerr := unix.Kill(u.pid, unix.SIGKILL); kerr != nil && kerr != unix.ESRCH {
			s.log.Error("cannot kill new supervisor", zap.Int("new_pid", u.pid), zap.Error(kerr))
		}
	}
	u.conn.Close()
	s.announceSuccessor(0)
	s.upgradeFailed(u.reply, err)
}

// upgradeFailed reports a failed upgrade: in the log, to systemd, and to
// the requester.
func (s *Supervisor) upgradeFailed(reply chan<- Response, err error) {
	s.log.Error("upgrade failed", zap.Error(err), zap.Int("generation", s.cur.num))
	if s.mode == running && err != errShuttingDown {
		s.sdNotify(s.notify.Ready("upgrade failed: " + err.Error() + "; " + s.cur.summary()))
	}
	answer(reply, Response{Error: "upgrade failed: " + err.Error()})
}

// forwardToSuccessor passes a handed-off connection to the new supervisor.
// It reports false if there is no committed one to take it.
func (s *Supervisor) forwardToSuccessor(m hotrestart.Message) bool {
	u := s.up
	if u == nil || !u.committed || u.closed {
		return false
	}
	if err := u.conn.Send(m); err != nil {
		s.log.Warn("cannot hand a connection to the new supervisor, closed", zap.Int("new_pid", u.pid), zap.Error(err))
	}
	return true
}
