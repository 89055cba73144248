package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/hotrestart"
)

// proc is one worker process. slot and g are immutable; the other fields
// are owned by the event loop, which sets them from events.
type proc struct {
	slot int
	g    *generation

	pid     int // 0 until started
	conn    *hotrestart.Conn
	started time.Time
	ready   bool
	// stopping: the worker's generation is being retired; it was told to
	// stop accepting and is told to drain once every worker of the
	// generation has stopped (stopped: it said so) or the wait ends.
	stopping, stopped bool
	// startErr is why the worker could not start, as it said before
	// exiting (TypeStartFailed); empty if it said nothing.
	startErr string
}

// eventKind says what happened to a worker process.
type eventKind uint8

const (
	evStarted          eventKind = iota // the process runs and was sent its Hello
	evReady                             // it sent Ready
	evExited                            // it exited, or could not be started
	evHandoff                           // it handed off a connection (msg)
	evStoppedAccepting                  // it stopped accepting, as asked
	evStartFailed                       // it cannot start (msg: why), and exits
)

// event reports something about a worker process to the event loop.
type event struct {
	kind  eventKind
	p     *proc
	pid   int                // evStarted
	conn  *hotrestart.Conn   // evStarted; nil if the channel failed
	state *os.ProcessState   // evExited; nil if the process never ran
	err   error              // evStarted: Hello failed; evExited: start failed
	msg   hotrestart.Message // evHandoff
}

// post delivers e to the event loop, or drops it once the loop has ended.
func (s *Supervisor) post(e event) {
	select {
	case s.events <- e:
	case <-s.done:
	}
}

// spawn starts a worker process for slot of generation g. It returns at
// once; the outcome arrives as events. Called by the loop.
func (s *Supervisor) spawn(g *generation, slot int) {
	p := &proc{slot: slot, g: g}
	s.procs[p] = struct{}{}
	g.live++
	g.slots[slot].proc = p
	lvl, _ := s.workerLvl.Load().(string)
	hello := hotrestart.Hello{ConfigPath: g.cfg.Path, Config: g.cfg.Source, Slot: slot, Generation: g.num,
		StatsFD: -1, HostStateFD: -1, TicketKeys: s.tickets.keys, LogLevel: lvl, Plugins: helloPlugins(g),
		ClusterHosts: s.hosts.helloHosts(g.cfg)}
	if g.stats != nil {
		fd, err := unix.FcntlInt(uintptr(g.stats.r.FD()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			go s.post(event{kind: evExited, p: p, err: fmt.Errorf("supervisor: dup stats region: %w", err)})
			return
		}
		hello.StatsFD, hello.StatsSlab = fd, g.slabs[slot]
	}
	hfd, err := unix.FcntlInt(uintptr(s.hosts.r.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		closeHello(&hello)
		go s.post(event{kind: evExited, p: p, err: fmt.Errorf("supervisor: dup host-state region: %w", err)})
		return
	}
	hello.HostStateFD, hello.HostStateWorker = hfd, g.hostIdx[slot]
	// The spawning goroutine gets its own copies of the sockets, so that
	// the loop may close its copies at any time.
	for _, sg := range g.groups {
		fd, err := unix.FcntlInt(uintptr(sg.fd(slot)), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeHello(&hello)
			go s.post(event{kind: evExited, p: p, err: fmt.Errorf("supervisor: dup listener %q: %w", sg.name, err)})
			return
		}
		hello.Listeners = append(hello.Listeners, hotrestart.ListenerFD{Name: sg.name, FD: fd})
	}
	go s.runWorker(p, hello, g.cfg.Server.GoMaxProcs)
}

// runWorker starts the worker process p, sends it hello, and waits for it
// to exit. It owns hello's descriptors.
//
// The goroutine stays locked to its OS thread for the life of the child:
// Pdeathsig fires when the thread that forked the child exits, and the Go
// runtime may otherwise retire that thread while the child runs.
func (s *Supervisor) runWorker(p *proc, hello hotrestart.Hello, gomaxprocs int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() { closeHello(&hello) }()

	local, remote, err := hotrestart.Pair()
	if err != nil {
		s.post(event{kind: evExited, p: p, err: err})
		return
	}
	cmd := &exec.Cmd{
		Path:        s.workerExe,
		Args:        []string{"sluice", "worker", "--slot", strconv.Itoa(hello.Slot), "--generation", strconv.Itoa(hello.Generation)},
		Env:         workerEnv(os.Environ(), gomaxprocs),
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		ExtraFiles:  []*os.File{remote}, // fd 3
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	err = cmd.Start()
	remote.Close()
	if err != nil {
		local.Close()
		s.post(event{kind: evExited, p: p, err: fmt.Errorf("supervisor: start worker: %w", err)})
		return
	}
	conn, err := hotrestart.NewConn(local)
	local.Close()
	if err == nil {
		var m hotrestart.Message
		if m, err = hello.Message(); err == nil {
			err = conn.Send(m)
		}
	}
	closeHello(&hello)
	s.post(event{kind: evStarted, p: p, pid: cmd.Process.Pid, conn: conn, err: err})
	read := make(chan struct{})
	if conn != nil {
		go func() {
			defer close(read)
			s.readWorker(p, conn)
		}()
	} else {
		close(read)
	}
	err = cmd.Wait()
	if cmd.ProcessState != nil {
		err = nil
	}
	// The worker's last messages (connections handed off on its way out)
	// reach the loop before its exit does: a supervisor that has handed
	// over exits once its last worker is gone.
	select {
	case <-read:
	case <-time.After(killGrace):
	}
	s.post(event{kind: evExited, p: p, state: cmd.ProcessState, err: err})
}

// readWorker forwards the messages of p's control channel to the loop until
// the channel ends.
func (s *Supervisor) readWorker(p *proc, conn *hotrestart.Conn) {
	for {
		m, err := conn.Recv()
		if err != nil {
			return
		}
		switch m.Type {
		case hotrestart.TypeReady:
			s.post(event{kind: evReady, p: p})
		case hotrestart.TypeHandoff:
			s.post(event{kind: evHandoff, p: p, msg: m})
		case hotrestart.TypeStoppedAccepting:
			s.post(event{kind: evStoppedAccepting, p: p})
		case hotrestart.TypeStartFailed:
			m.CloseFDs()
			s.post(event{kind: evStartFailed, p: p, msg: m})
		default:
			m.CloseFDs()
		}
	}
}

// supervisorOnlyEnv are the variables a worker must not inherit: they
// speak to systemd, which only the supervisor talks to.
var supervisorOnlyEnv = []string{"GOMAXPROCS=", "NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
	envListenFDs + "=", envListenPID + "=", envListenNames + "="}

// workerEnv returns env without the supervisor's systemd variables and with
// GOMAXPROCS set to n.
func workerEnv(env []string, n int) []string {
	out := make([]string, 0, len(env)+1)
next:
	for _, kv := range env {
		for _, prefix := range supervisorOnlyEnv {
			if strings.HasPrefix(kv, prefix) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return append(out, "GOMAXPROCS="+strconv.Itoa(max(n, 1)))
}

// closeHello closes the descriptors of h and forgets them.
func closeHello(h *hotrestart.Hello) {
	for _, l := range h.Listeners {
		unix.Close(l.FD)
	}
	h.Listeners = nil
	if h.StatsFD >= 0 {
		unix.Close(h.StatsFD)
		h.StatsFD = -1
	}
	if h.HostStateFD > 0 {
		unix.Close(h.HostStateFD)
		h.HostStateFD = -1
	}
}
