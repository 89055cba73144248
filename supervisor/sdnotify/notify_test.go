package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen returns a unixgram socket at addr, closed at cleanup.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv reads one datagram and returns its lines.
func recv(t *testing.T, c *net.UnixConn) []string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	msg := string(buf[:n])
	if !strings.HasSuffix(msg, "\n") {
		t.Errorf("datagram %q does not end in a newline", msg)
	}
	return strings.Split(strings.TrimSuffix(msg, "\n"), "\n")
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestSendsEachStateToAPathSocket(t *testing.T) {
	t.Parallel()
	addr := filepath.Join(t.TempDir(), "notify")
	c := listen(t, addr)
	n := NewAt(addr)
	tests := []struct {
		name string
		send func() error
		want []string
	}{
		{"ready", func() error { return n.Ready("serving") }, []string{"READY=1", "STATUS=serving"}},
		{"ready without status", func() error { return n.Ready("") }, []string{"READY=1"}},
		{"stopping", func() error { return n.Stopping("draining") }, []string{"STOPPING=1", "STATUS=draining"}},
		{"status on one line", func() error { return n.Status("a\nb") }, []string{"STATUS=a b"}},
		{"mainpid", func() error { return n.MainPID(4242) }, []string{"MAINPID=4242"}},
		{"watchdog", n.Watchdog, []string{"WATCHDOG=1"}},
	}
	for _, tt := range tests {
		if err := tt.send(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := recv(t, c); !equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReloadingCarriesMonotonicUsec(t *testing.T) {
	t.Parallel()
	addr := filepath.Join(t.TempDir(), "notify")
	c := listen(t, addr)
	before, err := MonotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if err := NewAt(addr).Reloading("reloading"); err != nil {
		t.Fatal(err)
	}
	after, _ := MonotonicUsec()
	got := recv(t, c)
	if len(got) != 3 || got[0] != "RELOADING=1" || !strings.HasPrefix(got[1], "MONOTONIC_USEC=") || got[2] != "STATUS=reloading" {
		t.Fatalf("got %q, want RELOADING=1, MONOTONIC_USEC=…, STATUS=reloading", got)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(got[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d (%v), want within [%d, %d]", usec, err, before, after)
	}
}

func TestSendsToAnAbstractSocket(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("@sluice-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c := listen(t, addr)
	if err := NewAt(addr).Ready(""); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); !equal(got, []string{"READY=1"}) {
		t.Fatalf("got %q, want READY=1", got)
	}
}

func TestNewReadsNotifySocket(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify")
	c := listen(t, addr)
	t.Setenv(EnvSocket, addr)
	if err := New().Stopping(""); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); !equal(got, []string{"STOPPING=1"}) {
		t.Fatalf("got %q, want STOPPING=1", got)
	}
}

func TestUnsetSocketSendsNothing(t *testing.T) {
	t.Setenv(EnvSocket, "")
	n := New()
	if n.Enabled() {
		t.Fatal("notifier enabled without NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil {
		t.Fatalf("Ready without a socket: %v", err)
	}
	if err := n.Reloading("x"); err != nil {
		t.Fatalf("Reloading without a socket: %v", err)
	}
}

func TestSendToAMissingSocketFails(t *testing.T) {
	t.Parallel()
	if err := NewAt(filepath.Join(t.TempDir(), "absent")).Ready(""); err == nil {
		t.Fatal("Ready to a missing socket returned nil")
	}
	if err := NewAt("relative").Ready(""); err == nil || !strings.HasPrefix(err.Error(), "sdnotify: ") {
		t.Fatalf("Ready to a relative name = %v, want an sdnotify error", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, usec, pid string
		want            time.Duration
	}{
		{"unset", "", "", 0},
		{"half of usec", "2000000", "", time.Second},
		{"pid matches", "200000", pid, 100 * time.Millisecond},
		{"other pid", "200000", "1", 0},
		{"garbage", "soon", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvWatchdogUsec, tt.usec)
			t.Setenv(EnvWatchdogPID, tt.pid)
			if got := WatchdogInterval(); got != tt.want {
				t.Fatalf("WatchdogInterval() = %v, want %v", got, tt.want)
			}
		})
	}
}
