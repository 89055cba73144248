// Package sdnotify speaks systemd's readiness protocol (sd_notify(3)): it
// sends state lines such as READY=1 as one datagram to the unix socket named
// by $NOTIFY_SOCKET, a file path or, with a leading '@', a name in the
// abstract namespace. It is written on golang.org/x/sys/unix alone.
//
// A Notifier made where $NOTIFY_SOCKET is unset does nothing, so callers
// send unconditionally. A Notifier may be used from several goroutines: each
// Send is one sendto(2) on a socket of its own.
package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables read by this package.
const (
	EnvSocket       = "NOTIFY_SOCKET"
	EnvWatchdogUsec = "WATCHDOG_USEC"
	EnvWatchdogPID  = "WATCHDOG_PID"
)

// Notifier sends state lines to the service manager.
type Notifier struct {
	addr string // "" when notifications are off
}

// New returns a Notifier for $NOTIFY_SOCKET; it does nothing if the
// variable is unset or empty.
func New() *Notifier { return &Notifier{addr: os.Getenv(EnvSocket)} }

// NewAt returns a Notifier for the socket at addr ("@name" for an abstract
// socket, "" for none).
func NewAt(addr string) *Notifier { return &Notifier{addr: addr} }

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Addr returns the socket address notifications go to, as in
// $NOTIFY_SOCKET; a new main process (after an upgrade) needs it.
func (n *Notifier) Addr() string {
	if n == nil {
		return ""
	}
	return n.addr
}

// Send sends the given "KEY=value" lines as one datagram. It returns nil at
// once when notifications are off. A value must not hold a newline; use
// Status for free text.
func (n *Notifier) Send(lines ...string) error {
	if !n.Enabled() {
		return nil
	}
	if len(lines) == 0 {
		return errors.New("sdnotify: nothing to send")
	}
	if !strings.HasPrefix(n.addr, "/") && !strings.HasPrefix(n.addr, "@") {
		return fmt.Errorf("sdnotify: %s=%q is neither a path nor an abstract name", EnvSocket, n.addr)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sdnotify: socket: %w", err)
	}
	defer unix.Close(fd)
	msg := []byte(strings.Join(lines, "\n") + "\n")
	// x/sys/unix turns a leading '@' into the abstract namespace's NUL.
	if err := unix.Sendto(fd, msg, unix.MSG_NOSIGNAL, &unix.SockaddrUnix{Name: n.addr}); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.addr, err)
	}
	return nil
}

// Ready tells the manager that startup or a reload is finished; status is
// sent with it as STATUS= when not empty.
func (n *Notifier) Ready(status string) error {
	return n.Send(withStatus([]string{"READY=1"}, status)...)
}

// Reloading tells the manager that a configuration reload starts. The
// message carries MONOTONIC_USEC, the CLOCK_MONOTONIC time of the call in
// microseconds, as systemd requires; Ready must follow when it ends.
func (n *Notifier) Reloading(status string) error {
	if !n.Enabled() {
		return nil
	}
	usec, err := MonotonicUsec()
	if err != nil {
		return err
	}
	lines := []string{"RELOADING=1", "MONOTONIC_USEC=" + strconv.FormatInt(usec, 10)}
	return n.Send(withStatus(lines, status)...)
}

// Stopping tells the manager that the service is shutting down.
func (n *Notifier) Stopping(status string) error {
	return n.Send(withStatus([]string{"STOPPING=1"}, status)...)
}

// Status sends a one-line, free-text status (newlines become spaces).
func (n *Notifier) Status(status string) error {
	return n.Send("STATUS=" + oneLine(status))
}

// MainPID tells the manager that pid is now the service's main process,
// as a binary upgrade hands the service over to a new supervisor.
func (n *Notifier) MainPID(pid int) error {
	return n.Send("MAINPID=" + strconv.Itoa(pid))
}

// Watchdog sends a keep-alive ping (WATCHDOG=1).
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// WatchdogInterval returns how often to call Watchdog: half of
// $WATCHDOG_USEC, when that is set and $WATCHDOG_PID is unset or names this
// process; 0 otherwise.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv(EnvWatchdogUsec), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := os.Getenv(EnvWatchdogPID); p != "" {
		if pid, err := strconv.Atoi(p); err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// MonotonicUsec returns CLOCK_MONOTONIC in microseconds.
func MonotonicUsec() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("sdnotify: clock_gettime: %w", err)
	}
	return ts.Nano() / 1e3, nil
}

func withStatus(lines []string, status string) []string {
	if status == "" {
		return lines
	}
	return append(lines, "STATUS="+oneLine(status))
}

// oneLine replaces line breaks, which would end the STATUS= line early.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
