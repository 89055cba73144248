package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// fallbackBacklog is the listen backlog when a listener sets none and
// net.core.somaxconn cannot be read.
const fallbackBacklog = 4096

// socketGroup holds the listening sockets of one listener in one
// generation: one per worker slot with reuse_port, else one shared by every
// slot. Each generation holds its own descriptors (duplicates, where a
// reload keeps a listener), so a generation closes its groups without
// caring which sockets a successor still uses. A socket stays open, and
// connections wait in its accept queue, as long as any generation or worker
// holds it.
type socketGroup struct {
	name   string
	key    string // the listener's configured address and reuse_port: what a reload matches
	addr   string // the bound host:port, with the real port
	shared bool   // one socket for every slot
	fds    []int
}

// udpKey marks the key of a udp (HTTP/3) listener's group. The protocol
// lives in the key, so a group passed to a new supervisor by an upgrade
// keeps it.
const udpKey = " protocol=udp"

// udp reports whether the group's sockets are UDP sockets.
func (g *socketGroup) udp() bool { return strings.HasSuffix(g.key, udpKey) }

// fd returns the socket that the worker in slot uses.
func (g *socketGroup) fd(slot int) int {
	if g.shared {
		return g.fds[0]
	}
	return g.fds[slot]
}

// close closes every socket of the group.
func (g *socketGroup) close() {
	for _, fd := range g.fds {
		unix.Close(fd)
	}
	g.fds = nil
}

// groupKey identifies a listener's sockets across reloads: its address as
// written in the config and its reuse_port setting, not its name. Port 0
// names no socket in particular (several listeners may ask for it), so
// there the name must match as well.
func groupKey(l *config.Listener) string {
	key := fmt.Sprintf("%s reuse_port=%t", l.Address, l.ReusePortEnabled())
	if _, port, err := net.SplitHostPort(l.Address); err == nil && port == "0" {
		key += " name=" + l.Name
	}
	if l.UDP() {
		key += udpKey
	}
	return key
}

// openGroups returns the socket groups of cfg's listeners for workers
// slots (none for a listener with bind_to_port = false). A listener whose key matches a group of prev keeps that group's
// sockets (duplicated, with sockets added or left out as the worker count
// changed); else one of adopted (sockets passed by systemd) is used if its
// address matches; else new sockets are bound. origins says, per group,
// which of "kept", "adopted" or "bound" happened. On error nothing stays
// open.
func openGroups(cfg *config.Config, workers int, prev []*socketGroup, adopted *adoptedSet) (groups []*socketGroup, origins []string, err error) {
	backlog := 0
	used := make([]bool, len(prev))
	defer func() {
		if err != nil {
			for _, g := range groups {
				g.close()
			}
			groups, origins = nil, nil
		}
	}()
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if !l.Bound() {
			// bind_to_port = false: served only through another
			// listener's hand-over, it owns no socket.
			continue
		}
		b := l.Backlog
		if b <= 0 {
			if backlog == 0 {
				backlog = somaxconn()
			}
			b = backlog
		}
		n := 1
		if l.ReusePortEnabled() {
			n = workers
		}
		key := groupKey(l)
		var g *socketGroup
		origin := "kept"
		for j, pg := range prev {
			if !used[j] && pg.key == key {
				used[j] = true
				g, err = pg.derive(l.Name, n, b)
				break
			}
		}
		if g == nil && err == nil {
			if fd, ok := adopted.take(l.Address, l.UDP()); ok {
				g, err = adoptGroup(l.Name, key, fd, n, l.ReusePortEnabled(), b)
				origin = "adopted"
			}
		}
		if g == nil && err == nil {
			g, err = bindGroup(l.Name, l.Address, n, l.ReusePortEnabled(), l.UDP(), b)
			if g != nil {
				g.key = key
			}
			origin = "bound"
		}
		if err != nil {
			return nil, nil, err
		}
		groups = append(groups, g)
		origins = append(origins, origin)
	}
	return groups, origins, nil
}

// derive returns a group for a new generation on g's sockets: duplicates of
// the first n of them (one if shared), and new sockets in the same
// SO_REUSEPORT group for slots that g lacks.
func (g *socketGroup) derive(name string, n, backlog int) (*socketGroup, error) {
	ng := &socketGroup{name: name, key: g.key, addr: g.addr, shared: g.shared}
	if g.shared {
		n = 1
	}
	for i := 0; i < n && i < len(g.fds); i++ {
		fd, err := unix.FcntlInt(uintptr(g.fds[i]), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			ng.close()
			return nil, fmt.Errorf("supervisor: listener %q: dup: %w", name, err)
		}
		ng.fds = append(ng.fds, fd)
	}
	if err := ng.grow(n, backlog); err != nil {
		ng.close()
		return nil, err
	}
	return ng, nil
}

// adoptGroup makes a group of an adopted socket (TCP, or UDP when key is a
// udp listener's). With reusePort and SO_REUSEPORT set on fd, sockets for
// the other slots are bound beside it; otherwise fd is shared by every
// slot, which a UDP socket cannot be. The group owns fd, also on error.
func adoptGroup(name, key string, fd, n int, reusePort bool, backlog int) (*socketGroup, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("supervisor: listener %q: adopted socket: getsockname: %w", name, err)
	}
	g := &socketGroup{name: name, key: key, addr: sockaddrString(sa), fds: []int{fd}}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT); !reusePort || err != nil || on == 0 {
		if g.udp() && n > 1 {
			// Workers sharing one UDP socket would each get packets of
			// the others' QUIC connections.
			g.close()
			return nil, fmt.Errorf("supervisor: listener %q: the UDP socket passed by systemd has no SO_REUSEPORT (ReusePort=yes in the .socket unit): QUIC needs one socket per worker", name)
		}
		g.shared = true
		return g, nil
	}
	if err := g.grow(n, backlog); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// grow binds SO_REUSEPORT sockets to the address of the group's first
// socket until the group has n.
func (g *socketGroup) grow(n, backlog int) error {
	if g.shared || len(g.fds) >= n {
		return nil
	}
	sa, err := unix.Getsockname(g.fds[0])
	if err != nil {
		return fmt.Errorf("supervisor: listener %q: getsockname: %w", g.name, err)
	}
	family, v6only := unix.AF_INET, false
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
		v, err := unix.GetsockoptInt(g.fds[0], unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		v6only = err == nil && v != 0
	}
	for len(g.fds) < n {
		fd, err := listenSocket(family, sa, v6only, true, g.udp(), backlog)
		if err != nil {
			return listenError(g.name, g.addr, g.udp(), err)
		}
		g.fds = append(g.fds, fd)
	}
	return nil
}

// listenError wraps a failure to bind a listener's socket, adding what an
// operator can do about the usual causes.
func listenError(name, address string, udp bool, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		_, port, _ := net.SplitHostPort(address)
		flags := "-ltnp"
		if udp {
			flags = "-lunp"
		}
		hint = fmt.Sprintf(" (another process holds this address; `ss %s 'sport = :%s'` names it: stop it, or change the listener's address)", flags, port)
	case errors.Is(err, unix.EACCES):
		hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE, which the shipped systemd unit grants)"
	case errors.Is(err, unix.EADDRNOTAVAIL):
		hint = " (no network interface of this host has this IP address)"
	}
	return fmt.Errorf("supervisor: listener %q: listen %s: %w%s", name, address, err, hint)
}

// bindGroup binds n sockets to address (UDP sockets with udp, else
// listening TCP sockets). With port 0 the first socket picks the port and
// the others bind to the same one.
func bindGroup(name, address string, n int, reusePort, udp bool, backlog int) (*socketGroup, error) {
	family, sa, v6only, err := resolve(address)
	if err != nil {
		return nil, fmt.Errorf("supervisor: listener %q: %w", name, err)
	}
	g := &socketGroup{name: name, shared: !reusePort}
	for i := 0; i < n; i++ {
		fd, err := listenSocket(family, sa, v6only, reusePort, udp, backlog)
		if err != nil {
			g.close()
			return nil, listenError(name, address, udp, err)
		}
		g.fds = append(g.fds, fd)
		if i > 0 {
			continue
		}
		bound, err := unix.Getsockname(fd)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("supervisor: listener %q: getsockname: %w", name, err)
		}
		sa = bound // later sockets of the group bind to the chosen port
		g.addr = sockaddrString(bound)
	}
	return g, nil
}

// listenSocket returns a non-blocking, close-on-exec TCP socket listening
// on sa, or with udp a UDP socket bound to sa; v6only sets IPV6_V6ONLY on
// an AF_INET6 socket.
func listenSocket(family int, sa unix.Sockaddr, v6only, reusePort, udp bool, backlog int) (int, error) {
	typ, proto := unix.SOCK_STREAM, unix.IPPROTO_TCP
	if udp {
		typ, proto = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	err = setsockopt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err == nil && reusePort {
		err = setsockopt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err == nil && family == unix.AF_INET6 {
		v := 0
		if v6only {
			v = 1
		}
		err = setsockopt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v)
	}
	if err == nil {
		err = os.NewSyscallError("bind", unix.Bind(fd, sa))
	}
	if err == nil && !udp {
		err = os.NewSyscallError("listen", unix.Listen(fd, backlog))
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func setsockopt(fd, level, opt, v int) error {
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, level, opt, v))
}

// resolve turns host:port into a socket address. An IPv4 literal gives an
// AF_INET socket, an IPv6 literal an IPv6-only AF_INET6 socket, an empty
// host a dual-stack AF_INET6 socket (AF_INET where IPv6 is off), and a host
// name its first address. v6only tells whether an AF_INET6 socket must set
// IPV6_V6ONLY.
func resolve(address string) (family int, sa unix.Sockaddr, v6only bool, err error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return 0, nil, false, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0, nil, false, fmt.Errorf("address %q: bad port", address)
	}
	if host == "" {
		if ipv6Enabled() {
			return unix.AF_INET6, &unix.SockaddrInet6{Port: int(port)}, false, nil
		}
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(port)}, false, nil
	}
	ta, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, portStr))
	if err != nil {
		return 0, nil, false, err
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte(ip4)}, false, nil
	}
	sa6 := &unix.SockaddrInet6{Port: int(port), Addr: [16]byte(ta.IP.To16())}
	if ta.Zone != "" {
		ifi, err := net.InterfaceByName(ta.Zone)
		if err != nil {
			return 0, nil, false, fmt.Errorf("address %q: %w", address, err)
		}
		sa6.ZoneId = uint32(ifi.Index)
	}
	return unix.AF_INET6, sa6, true, nil
}

// ipv6Enabled reports whether this host can open IPv6 sockets.
func ipv6Enabled() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return !errors.Is(err, unix.EAFNOSUPPORT)
	}
	unix.Close(fd)
	return true
}

// sockaddrString formats a bound address as host:port.
func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		host := net.IP(a.Addr[:]).String()
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				host += "%" + ifi.Name
			}
		}
		return net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	return fmt.Sprintf("%v", sa)
}

// somaxconn returns net.core.somaxconn, or fallbackBacklog.
func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return fallbackBacklog
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return fallbackBacklog
	}
	return n
}
