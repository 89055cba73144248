package supervisor_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The socket activation helper: the test binary, run with envActivate set
// and a listening socket as fd 3, becomes "sluice run" the way systemd
// starts it, with LISTEN_PID naming its own pid.
const (
	envActivate       = "SLUICE_TEST_ACTIVATE"
	envActivateBinary = "SLUICE_TEST_BINARY"
	envActivateConfig = "SLUICE_TEST_CONFIG"
)

// execActivated sets the LISTEN_* variables and executes sluice; it
// returns only on error.
func execActivated() int {
	exe, cfg := os.Getenv(envActivateBinary), os.Getenv(envActivateConfig)
	os.Unsetenv(envActivate)
	os.Unsetenv(envActivateBinary)
	os.Unsetenv(envActivateConfig)
	os.Setenv("LISTEN_FDS", "1")
	os.Setenv("LISTEN_FDNAMES", "http")
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	err := syscall.Exec(exe, []string{"sluice", "run", "-c", cfg}, os.Environ())
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", exe, err)
	return 2
}

// startActivated runs sluice on config text with ln passed as fd 3 and
// LISTEN_FDS=1.
func startActivated(t *testing.T, text string, ln *net.TCPListener) *sluice {
	t.Helper()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	path := writeConfig(t, text)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envActivate+"=1", envActivateBinary+"="+binary, envActivateConfig+"="+path)
	cmd.ExtraFiles = []*os.File{f}
	return startCmd(t, path, cmd)
}

// activationConfig is proxyConfig with the listener on addr.
func activationConfig(t *testing.T, up, addr string) string {
	t.Helper()
	text := proxyConfig(up, controlPath(t), "public")
	return strings.Replace(text, `address = "127.0.0.1:0"`, fmt.Sprintf("address = %q", addr), 1)
}

func TestAdoptsSocketPassedBySystemd(t *testing.T) {
	t.Parallel()
	for _, reusePort := range []bool{false, true} {
		t.Run(fmt.Sprintf("reuseport=%t", reusePort), func(t *testing.T) {
			t.Parallel()
			lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					if reusePort {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
					}
				})
				if err != nil {
					return err
				}
				return serr
			}}
			l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := l.(*net.TCPListener)
			defer ln.Close()
			addr := ln.Addr().String()
			up := newUpstream(t)
			s := startActivated(t, activationConfig(t, up.addr, addr), ln)
			e := s.wait(t, "listening", map[string]any{"listener": "public"}, nil)
			if e.str("address") != addr || e.str("sockets") != "adopted" {
				t.Fatalf("listening line %v, want address %s from adopted sockets", e, addr)
			}
			// Our copy must not accept what the workers should get.
			ln.Close()
			for _, pid := range s.workers(t) {
				for _, kv := range environ(t, pid) {
					if strings.HasPrefix(kv, "LISTEN_") {
						t.Errorf("worker %d inherited %s", pid, kv)
					}
				}
			}
			if code, body := get(t, addr, "/"); code != 200 || body != "ok" {
				t.Fatalf("GET through the adopted socket: %d %q", code, body)
			}
			// Without SO_REUSEPORT the workers share the adopted socket;
			// with it, the supervisor adds one for the second worker.
			want := 1
			if reusePort {
				want = 2
			}
			if n := listeningSockets(t, portOf(t, addr)); n != want {
				t.Errorf("%d sockets listen on %s, want %d", n, addr, want)
			}
		})
	}
}
