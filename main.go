// Command sluice is an edge gateway: an L4/L7 proxy run as a supervisor
// process that owns the listening sockets and worker processes that serve
// them.
//
//	sluice run -c FILE        run the supervisor in the foreground
//	sluice validate -c FILE   check a config file and exit
//	sluice version            print the version
//	sluice worker ...         a worker process; started only by sluice run
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/sluice-proxy/sluice/supervisor"
	"github.com/sluice-proxy/sluice/worker"
)

// version is set at link time: -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `usage: sluice <command> [flags]

commands:
  run -c FILE        run the supervisor (and its workers) in the foreground
  validate -c FILE   check a config file: prints "FILE: ok" or the error
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
		path, ok := configFlag(cmd, args)
		if !ok {
			return 2
		}
		return supervisor.Run(supervisor.Options{ConfigPath: path})
	case "validate":
		path, ok := configFlag(cmd, args)
		if !ok {
			return 2
		}
		if _, err := supervisor.LoadConfig(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s: ok\n", path)
		return 0
	case "worker":
		fs := newFlagSet(cmd)
		var opts worker.Options
		fs.IntVar(&opts.Slot, "slot", -1, "worker slot")
		fs.IntVar(&opts.Generation, "generation", 0, "config generation")
		if fs.Parse(args) != nil || opts.Slot < 0 || fs.NArg() > 0 {
			fmt.Fprintln(os.Stderr, "usage: sluice worker --slot N --generation G (started by sluice run only)")
			return 2
		}
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

// configFlag parses the -c flag of run and validate.
func configFlag(cmd string, args []string) (string, bool) {
	fs := newFlagSet(cmd)
	path := fs.String("c", "", "config `FILE`")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "usage: sluice %s -c FILE\n", cmd)
		return "", false
	}
	return *path, true
}

func newFlagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+cmd, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}
