package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// The control socket protocol: a client connects to the unix stream socket
// at server.control_socket, writes one JSON request line and reads one JSON
// response line, sent when the outcome is known.
//
//	→ {"cmd":"reload"}
//	← {"ok":true,"generation":3}
//	→ {"cmd":"upgrade"}
//	← {"ok":true,"generation":4,"pid":4711}
//	← {"ok":false,"error":"reload failed: sluice.toml:3: server.workerz: unknown key"}
const (
	// CmdReload reloads the config file.
	CmdReload = "reload"
	// CmdUpgrade replaces the running binary: the answer carries the new
	// supervisor's pid.
	CmdUpgrade = "upgrade"
	// CmdReopenLogs makes every worker reopen its access log files (as
	// SIGUSR1 does); the answer comes once every worker was told.
	CmdReopenLogs = "reopen-logs"

	// maxRequest bounds a request line.
	maxRequest = 4 << 10
	// requestTimeout bounds how long a client may take to send its request.
	requestTimeout = 10 * time.Second
)

// Request is a control socket request. Config is the absolute path of the
// config file the requester was given (sluice reload -c FILE), if any: the
// supervisor only ever re-reads the file it was started with, so it refuses
// a reload or upgrade naming another file rather than report success for a
// config it never read.
type Request struct {
	Cmd    string `json:"cmd"`
	Config string `json:"config,omitempty"`
}

// Response is a control socket response: OK with the generation now
// serving (and, after an upgrade, the pid of the supervisor that serves
// it), or an error message.
type Response struct {
	OK         bool   `json:"ok"`
	Generation int    `json:"generation,omitempty"`
	PID        int    `json:"pid,omitempty"`
	Error      string `json:"error,omitempty"`
}

// request is a control request on its way to the event loop; reply is
// buffered (capacity 1).
type request struct {
	cmd   string
	reply chan Response
}

// openControl creates the control socket and serves it. Failing to create
// it is logged, not fatal: the supervisor still reloads on SIGHUP.
func (s *Supervisor) openControl(path string) {
	ln, err := listenControl(path)
	if err != nil {
		s.log.Error("control socket unavailable, reload with SIGHUP", zap.String("path", path), zap.Error(err))
		return
	}
	s.control = ln
	s.log.Info("control socket", zap.String("path", path))
	go s.serveControl(ln)
}

// controlInUse reports, as an error, a supervisor already serving the
// control socket at path: a second sluice run on the same config would
// otherwise bind the same ports beside it (SO_REUSEPORT), splitting the
// traffic between two supervisors, and replace its control socket, so that
// sluice reload reached only the newcomer. A socket file nobody accepts on
// is stale (a supervisor killed with SIGKILL) and is replaced later.
func controlInUse(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("supervisor: control socket %s is in use: another sluice is running with it (stop that one, or give this one its own server.control_socket)", path)
}

// closeControl closes the control socket and removes its file.
func (s *Supervisor) closeControl() {
	if s.control != nil {
		s.control.Close()
	}
}

// listenControl creates a unix stream socket at path with mode 0600,
// replacing a stale socket file.
func listenControl(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("supervisor: control socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("supervisor: control socket: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("supervisor: control socket: remove stale %s: %w", path, err)
		}
	}
	// The umask makes bind create the file with mode 0600, so that it is
	// never reachable by others; the event loop has not started any other
	// goroutine that creates files yet.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("supervisor: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("supervisor: control socket: %w", err)
	}
	return ln, nil
}

// serveControl accepts control connections until ln is closed.
func (s *Supervisor) serveControl(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket failed", zap.Error(err))
			}
			return
		}
		go s.serveRequest(c)
	}
}

// serveRequest reads one request from c, passes it to the event loop and
// writes the answer.
func (s *Supervisor) serveRequest(c *net.UnixConn) {
	s.answering.Add(1)
	defer s.answering.Done()
	defer c.Close()
	resp := s.handleRequest(c)
	b, _ := json.Marshal(resp)
	c.SetWriteDeadline(time.Now().Add(requestTimeout))
	c.Write(append(b, '\n'))
}

func (s *Supervisor) handleRequest(c *net.UnixConn) Response {
	if err := checkPeer(c); err != nil {
		s.log.Warn("control request refused", zap.Error(err))
		return Response{Error: err.Error()}
	}
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := bufio.NewReaderSize(c, maxRequest).ReadSlice('\n')
	if err != nil {
		return Response{Error: fmt.Sprintf("supervisor: read request: %v", err)}
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: fmt.Sprintf("supervisor: bad request: %v", err)}
	}
	if err := s.checkConfigPath(req); err != nil {
		s.log.Warn(req.Cmd+" refused", zap.Error(err))
		return Response{Error: err.Error()}
	}
	r := request{cmd: req.Cmd, reply: make(chan Response, 1)}
	select {
	case s.requests <- r:
	case <-s.done:
		return Response{Error: "supervisor: exiting"}
	}
	select {
	case resp := <-r.reply:
		return resp
	case <-s.done:
		select {
		case resp := <-r.reply: // answered just before the loop ended
			return resp
		default:
			return Response{Error: "supervisor: exited before the outcome was known"}
		}
	}
}

// checkConfigPath refuses a reload or upgrade whose requester named a
// config file other than the one this supervisor was started with (and so
// re-reads). A file the supervisor cannot stat (another mount namespace,
// say) is not refused: the check is only for a file known to differ.
func (s *Supervisor) checkConfigPath(req Request) error {
	if req.Config == "" || (req.Cmd != CmdReload && req.Cmd != CmdUpgrade) {
		return nil
	}
	own, err1 := os.Stat(s.path)
	asked, err2 := os.Stat(req.Config)
	if err1 != nil || err2 != nil || os.SameFile(own, asked) {
		return nil
	}
	abs, _ := filepath.Abs(s.path)
	return fmt.Errorf("supervisor: %s refused: sluice runs with %s, not %s (reload and upgrade re-read the file sluice run was started with: edit that one, or restart with -c %s)",
		req.Cmd, abs, req.Config, req.Config)
}

// checkPeer accepts only root and the supervisor's own user, whatever the
// socket file's mode.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("supervisor: control peer: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("supervisor: control peer: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("supervisor: control peer: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("supervisor: control peer uid %d not allowed", cred.Uid)
	}
	return nil
}

// request runs a control request on the loop.
func (s *Supervisor) request(r request) {
	switch r.cmd {
	case CmdReload:
		s.reload(r.reply, "control socket")
	case CmdUpgrade:
		s.startUpgrade(r.reply, "control socket")
	case CmdReopenLogs:
		s.reopenLogs("control socket")
		answer(r.reply, Response{OK: true, Generation: s.cur.num})
	default:
		answer(r.reply, Response{Error: fmt.Sprintf("supervisor: unknown command %q", r.cmd)})
	}
}

// Send sends cmd to the supervisor whose control socket is at path and
// waits up to timeout for its answer. An error means the answer never came;
// a refused or failed command is a Response with OK false.
func Send(path, cmd string, timeout time.Duration) (Response, error) {
	return SendRequest(path, Request{Cmd: cmd}, timeout)
}

// SendRequest is Send with a whole request (Request.Config names the
// requester's config file).
func SendRequest(path string, req Request, timeout time.Duration) (Response, error) {
	cmd := req.Cmd
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return Response{}, fmt.Errorf("supervisor: cannot reach the supervisor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("supervisor: send %s: %w", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return Response{}, fmt.Errorf("supervisor: no answer to %s: %w", cmd, err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		return Response{}, fmt.Errorf("supervisor: bad answer to %s: %w", cmd, err)
	}
	if !r.OK && r.Error == "" {
		r.Error = "supervisor: " + cmd + " failed without a reason"
	}
	return r, nil
}

// ControlPath returns the control socket path that the config file at
// configPath names, read leniently (the file may be the invalid config whose
// reload is being asked for), or the default path when configPath is empty
// or sets none.
func ControlPath(configPath string) string {
	if configPath != "" {
		var f struct {
			Server struct {
				ControlSocket string `toml:"control_socket"`
			} `toml:"server"`
		}
		if _, err := toml.DecodeFile(configPath, &f); err == nil && f.Server.ControlSocket != "" {
			return f.Server.ControlSocket
		}
	}
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	if dir == "" {
		return config.DefaultControlSocket
	}
	return filepath.Join(dir, "control.sock")
}
