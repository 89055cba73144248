package originaldst

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// sockCallbacks is netfilter.ListenerCallbacks over a real accepted
// connection that, like the listener's peeker, implements syscall.Conn.
type sockCallbacks struct {
	nc   net.Conn
	info netfilter.Info
}

func (c *sockCallbacks) Peek(int) ([]byte, error) { panic("original_dst must not read") }
func (c *sockCallbacks) Consume(int)              { panic("original_dst must not consume") }
func (c *sockCallbacks) Info() *netfilter.Info    { return &c.info }
func (c *sockCallbacks) SyscallConn() (syscall.RawConn, error) {
	return c.nc.(syscall.Conn).SyscallConn()
}

// noSockCallbacks has no socket to give.
type noSockCallbacks struct{ info netfilter.Info }

func (c *noSockCallbacks) Peek(int) ([]byte, error) { panic("original_dst must not read") }
func (c *noSockCallbacks) Consume(int)              { panic("original_dst must not consume") }
func (c *noSockCallbacks) Info() *netfilter.Info    { return &c.info }

func newFilter(t *testing.T) netfilter.ListenerFilter {
	t.Helper()
	info, ok := registry.Lookup(Name)
	if !ok || info.Kind != registry.Listener {
		t.Fatalf("not registered: %+v", info)
	}
	f, err := info.New().Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	return f.(netfilter.ListenerFilterFactory).NewFilter()
}

// acceptFrom listens on listenAddr, dials dialAddr (which a NAT rule may
// send to the listener), and runs the filter on the accepted connection.
func acceptFrom(t *testing.T, listenAddr, dialAddr string) *sockCallbacks {
	t.Helper()
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if dialAddr == "" {
		dialAddr = ln.Addr().String()
	}
	c, err := net.Dial("tcp", dialAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cb := &sockCallbacks{nc: s, info: netfilter.Info{LocalAddr: s.LocalAddr().(*net.TCPAddr).AddrPort()}}
	if st := newFilter(t).OnAccept(cb); st != netfilter.Continue {
		t.Fatalf("status %v", st)
	}
	return cb
}

func TestWithoutNATKeepsLocalAddress(t *testing.T) {
	cb := acceptFrom(t, "127.0.0.1:0", "")
	if want := cb.nc.LocalAddr().(*net.TCPAddr).AddrPort(); cb.info.LocalAddr != want {
		t.Fatalf("local address %v, want %v", cb.info.LocalAddr, want)
	}
	nb := &noSockCallbacks{info: netfilter.Info{LocalAddr: netip.MustParseAddrPort("127.0.0.1:9")}}
	if st := newFilter(t).OnAccept(nb); st != netfilter.Continue || nb.info.LocalAddr.Port() != 9 {
		t.Fatalf("without a socket: status %v local %v", st, nb.info.LocalAddr)
	}
}

// netnsChildEnv marks the re-executed test process that runs inside the
// network namespace.
const netnsChildEnv = "SLUICE_ORIGINAL_DST_NETNS"

// TestRedirectedConnectionGetsOriginalDestination creates a network
// namespace, re-runs itself inside it, and there sends connections to
// 127.0.0.2:<port> and [::2]... through an iptables REDIRECT to a listener
// on another port: the filter must report the address dialled.
func TestRedirectedConnectionGetsOriginalDestination(t *testing.T) {
	if os.Getenv(netnsChildEnv) != "" {
		redirectedChild(t)
		return
	}
	ns := fmt.Sprintf("sluice-odst-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0],
		"-test.run", "^TestRedirectedConnectionGetsOriginalDestination$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsChildEnv+"="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in netns %s: %v\n%s", ns, err, out)
	}
}

// redirectedChild runs inside the namespace.
func redirectedChild(t *testing.T) {
	run(t, "ip", "link", "set", "lo", "up")
	for _, tc := range []struct {
		name, iptables, listen, orig string
	}{
		{"ipv4", "iptables", "127.0.0.1:0", "127.0.0.2:7001"},
		{"ipv6", "ip6tables", "[::1]:0", "[::1]:7002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			orig := netip.MustParseAddrPort(tc.orig)
			run(t, tc.iptables, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", orig.Addr().String(),
				"--dport", fmt.Sprint(orig.Port()), "-j", "REDIRECT", "--to-ports", fmt.Sprint(port))
			listen := strings.Replace(tc.listen, ":0", fmt.Sprintf(":%d", port), 1)
			cb := acceptFrom(t, listen, tc.orig)
			if cb.info.LocalAddr != orig {
				t.Fatalf("local address %v, want the original destination %v (socket's: %v)", cb.info.LocalAddr, orig, cb.nc.LocalAddr())
			}
		})
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
