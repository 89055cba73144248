// Command sluice is an edge gateway: an L4/L7 proxy run as a supervisor
// process that owns the listening sockets and worker processes that serve
// them.
//
//	sluice run -c FILE        run the supervisor in the foreground
//	sluice validate -c FILE   check a config file and exit
//	sluice reload [-c FILE] [--control PATH]
//	                          reload the running supervisor's config
//	sluice upgrade [-c FILE] [--control PATH]
//	                          replace the running supervisor and workers by
//	                          the binary now at the supervisor's path
//	sluice reopen-logs [-c FILE] [--control PATH]
//	                          make every worker reopen its access log files
//	sluice version            print the version
//	sluice worker ...         a worker process; started only by sluice run
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/supervisor"
	"github.com/sluice-proxy/sluice/worker"
)

// version is set at link time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// workerName is a worker's process name (comm, what ps -e and top show);
// workers are started as /proc/self/exe, which would read "exe".
const workerName = "sluice-worker"

func init() {
	// The process name is the main thread's: keep the main goroutine on it
	// until a worker has named it (see nameWorker).
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		runtime.LockOSThread()
	}
}

// nameWorker sets the worker's process name and lets the main goroutine
// leave the main thread.
func nameWorker() {
	name := []byte(workerName + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	runtime.UnlockOSThread()
}

const usage = `usage: sluice <command> [flags]

commands:
  run -c FILE        run the supervisor (and its workers) in the foreground
  validate -c FILE   check a config file: prints "FILE: ok" or the error
  reload [-c FILE] [--control PATH]
                     make the running supervisor reload its config file and
                     wait for the outcome: exit 0 once the new generation
                     serves, 1 with the reason otherwise
  upgrade [-c FILE] [--control PATH]
                     make the running supervisor start the binary now at its
                     path, hand it every socket and drain into it; exit 0
                     with the new supervisor's pid once it serves, 1 with the
                     reason otherwise (the old one then serves on)
  reopen-logs [-c FILE] [--control PATH]
                     make every worker reopen its access log files (after
                     logrotate moved them), as SIGUSR1 on the supervisor does
  version            print the version
  help               print this help

"sluice worker" is started by "sluice run" only.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches a command line and returns the exit code.
func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		path, code, ok := configFlag(cmd, args)
		if !ok {
			return code
		}
		return supervisor.Run(supervisor.Options{ConfigPath: path, Version: version})
	case "validate":
		path, code, ok := configFlag(cmd, args)
		if !ok {
			return code
		}
		if _, err := supervisor.LoadConfig(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s: ok\n", path)
		return 0
	case "reload", "upgrade", "reopen-logs":
		return control(cmd, args)
	case "worker":
		fs := newFlagSet(cmd, "--slot N --generation G", "a worker process; started by sluice run only", args)
		var opts worker.Options
		fs.IntVar(&opts.Slot, "slot", -1, "worker slot")
		fs.IntVar(&opts.Generation, "generation", 0, "config generation")
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			return 2
		}
		if opts.Slot < 0 || fs.NArg() > 0 {
			fs.Usage()
			return 2
		}
		nameWorker()
		return worker.Run(opts)
	case "version":
		fmt.Printf("sluice %s (%s)\n", version, runtime.Version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// controlTimeout bounds the wait for a reload's or upgrade's outcome: the
// supervisor answers within its own readiness timeout.
const controlTimeout = 2 * time.Minute

// control sends cmd to the running supervisor over its control socket,
// prints the outcome and returns the exit code.
func control(cmd string, args []string) int {
	fs := newFlagSet(cmd, "[-c FILE] [--control PATH]", commandHelp[cmd], args)
	cfgPath := fs.String("c", "", "config `FILE` naming the control socket")
	path := fs.String("control", "", "control socket `PATH` (default: server.control_socket of -c FILE)")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sluice %s: unexpected argument %q\n", cmd, fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *path == "" {
		*path = supervisor.ControlPath(*cfgPath)
	}
	req := supervisor.Request{Cmd: cmd}
	if *cfgPath != "" {
		// The supervisor re-reads its own file: it refuses a reload or an
		// upgrade that names another one.
		if abs, err := filepath.Abs(*cfgPath); err == nil {
			req.Config = abs
		}
	}
	resp, err := supervisor.SendRequest(*path, req, controlTimeout)
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			hint = fmt.Sprintf(" (no sluice supervisor serves this control socket: is sluice running? It listens at server.control_socket of the file it runs with; name that file with -c, or the socket with --control%s)", signalHint(cmd))
		} else if errors.Is(err, syscall.EACCES) {
			hint = " (the control socket is for root and the user sluice runs as: run this as one of them)"
		}
		fmt.Fprintf(os.Stderr, "sluice %s: %s: %v%s\n", cmd, *path, err, hint)
		return 1
	}
	if !resp.OK {
		fmt.Fprintf(os.Stderr, "sluice %s: %s\n", cmd, resp.Error)
		return 1
	}
	if resp.PID != 0 {
		fmt.Printf("sluice %s: supervisor pid %d, generation %d serving\n", cmd, resp.PID, resp.Generation)
		return 0
	}
	fmt.Printf("sluice %s: generation %d serving\n", cmd, resp.Generation)
	return 0
}

// signalHint names the signal that does what cmd does, for a supervisor
// whose control socket cannot be found.
func signalHint(cmd string) string {
	switch cmd {
	case "reload":
		return "; SIGHUP to the supervisor also reloads"
	case "upgrade":
		return "; SIGUSR2 to the supervisor also upgrades"
	case "reopen-logs":
		return "; SIGUSR1 to the supervisor also reopens the logs"
	}
	return ""
}

// configFlag parses the -c flag of run and validate. It returns the exit
// code to end with when the command should not run: 0 after --help, 2 for
// a usage error.
func configFlag(cmd string, args []string) (string, int, bool) {
	fs := newFlagSet(cmd, "-c FILE", commandHelp[cmd], args)
	path := fs.String("c", "", "config `FILE`")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return "", 0, false
	}
	if err != nil {
		return "", 2, false
	}
	if *path == "" || fs.NArg() > 0 {
		if *path == "" {
			fmt.Fprintf(os.Stderr, "sluice %s: -c FILE is required\n", cmd)
		} else {
			fmt.Fprintf(os.Stderr, "sluice %s: unexpected argument %q\n", cmd, fs.Arg(0))
		}
		fs.Usage()
		return "", 2, false
	}
	return *path, 0, true
}

// commandHelp is the one-line description each command's --help prints.
var commandHelp = map[string]string{
	"run":         "run the supervisor (and its workers) in the foreground; SIGTERM drains and exits, SIGHUP reloads, SIGUSR2 upgrades, SIGUSR1 reopens access logs",
	"validate":    `check a config file: prints "FILE: ok" and exits 0, or prints "file:line: key: message" lines and exits 1`,
	"reload":      "make the running supervisor reload its config file; exit 0 once the new generation serves, 1 with the reason otherwise (the running generation then serves on)",
	"upgrade":     "make the running supervisor start the binary now at its path and drain into it; exit 0 with the new supervisor's pid once it serves, 1 with the reason otherwise (the old one then serves on)",
	"reopen-logs": "make every worker reopen its access log files (after logrotate moved them), as SIGUSR1 on the supervisor does",
}

// newFlagSet returns the flag set of cmd, whose usage (on --help, or after
// a bad flag) names the command's arguments and says what it does.
// Help asked for (-h, --help) goes to stdout, a usage error's to stderr.
func newFlagSet(cmd, synopsis, help string, args []string) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+cmd, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(os.Stdout)
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sluice %s %s\n", cmd, synopsis)
		if help != "" {
			fmt.Fprintf(fs.Output(), "\n%s\n", help)
		}
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	return fs
}
