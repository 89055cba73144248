package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// startTimeout bounds a plugin's start up to its handshake line.
const startTimeout = 10 * time.Second

// Process is a running plugin executable launched by this process. Its
// methods are safe for concurrent use.
type Process struct {
	cfg      Config
	client   *goplugin.Client
	reattach Reattach
	done     chan struct{} // closed when the process has exited
}

// Launch starts the plugin described by cfg and waits for its handshake.
// With cfg.SHA256 set, the executable's checksum is verified first. The
// process runs until it exits, Kill is called, or this process dies (the
// plugin gets SIGKILL then).
func Launch(cfg Config, log *zap.Logger) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = pluginEnv(os.Environ(), cfg.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cc := &goplugin.ClientConfig{
		HandshakeConfig:  authapi.Handshake,
		Plugins:          authapi.PluginMap,
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclogger(log, "plugin."+cfg.Name),
		// What the plugin writes to its standard error before it serves,
		// and with loggers made before (the log package's), comes here.
		Stderr:       outputWriter(log, cfg.Name, "stderr"),
		StartTimeout: startTimeout,
		// cmd.Env already holds sluice's environment: go-plugin would
		// append it after cfg.Env, and the last value of a name wins.
		SkipHostEnv: true,
	}
	if cfg.SHA256 != "" {
		sum, _ := hex.DecodeString(cfg.SHA256) // checked by Validate
		cc.SecureConfig = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := goplugin.NewClient(cc)
	addr, err := client.Start()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin %q: start %s: %w", cfg.Name, cfg.Path, err)
	}
	p := &Process{
		cfg:    cfg,
		client: client,
		reattach: Reattach{
			Network:         addr.Network(),
			Addr:            addr.String(),
			Pid:             cmd.Process.Pid,
			ProtocolVersion: client.NegotiatedVersion(),
		},
		done: make(chan struct{}),
	}
	go p.watch(log)
	return p, nil
}

// pluginEnv is the environment of a plugin: sluice's (inherited) with the
// [[plugin]] table's env set over it, sorted by name for the added ones.
func pluginEnv(inherited []string, env map[string]string) []string {
	out := make([]string, 0, len(inherited)+len(env))
	for _, kv := range inherited {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; !ok {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Reattach returns what workers need to connect to the process.
func (p *Process) Reattach() Reattach { return p.reattach }

// Pid returns the process id.
func (p *Process) Pid() int { return p.reattach.Pid }

// Done returns a channel closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the process has exited.
func (p *Process) Wait() { <-p.done }

// Kill asks the plugin to shut down (a go-plugin Shutdown RPC), kills it if
// it has not exited two seconds later, and waits for it to exit.
func (p *Process) Kill() {
	p.client.Kill()
	<-p.done
}

// watch closes p.done when the process exits. It waits on a pidfd through
// the Go netpoller, so that it never reaps the child go-plugin waits for;
// without pidfd support it polls.
func (p *Process) watch(log *zap.Logger) {
	defer close(p.done)
	fd, err := unix.PidfdOpen(p.reattach.Pid, unix.PIDFD_NONBLOCK)
	if err == unix.ESRCH {
		return
	}
	if err != nil {
		log.Debug("plugin: pidfd_open failed, polling for exit", zap.String("plugin", p.cfg.Name), zap.Error(err))
		for !p.client.Exited() {
			time.Sleep(200 * time.Millisecond)
		}
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 0)
			return n > 0
		})
	}
	if err != nil {
		for !p.client.Exited() {
			time.Sleep(200 * time.Millisecond)
		}
	}
}
