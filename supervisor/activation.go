package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Socket activation (sd_listen_fds(3)): systemd passes listening sockets as
// descriptors 3, 4, … and announces them in the environment.
const (
	listenFDsStart = 3
	envListenFDs   = "LISTEN_FDS"
	envListenPID   = "LISTEN_PID"
	envListenNames = "LISTEN_FDNAMES"
)

// adoptedSocket is one socket passed by systemd: a listening TCP socket
// (ListenStream=) or a bound UDP socket (ListenDatagram=).
type adoptedSocket struct {
	fd   int
	name string // from LISTEN_FDNAMES, may be empty
	udp  bool
	sa   unix.Sockaddr
	addr string
}

// adoptedSet holds the passed sockets that no listener has claimed yet. It
// is used by the event loop only; a nil set holds nothing.
type adoptedSet struct {
	socks []adoptedSocket
}

// adoptListenFDs takes the sockets systemd passed to this process, if
// LISTEN_PID names it, and unsets the LISTEN_* variables so that workers do
// not see them. Passed descriptors that are neither listening TCP sockets
// nor bound UDP sockets are closed and reported in skipped.
func adoptListenFDs() (set *adoptedSet, skipped []string, err error) {
	nStr, pidStr, names := os.Getenv(envListenFDs), os.Getenv(envListenPID), os.Getenv(envListenNames)
	os.Unsetenv(envListenFDs)
	os.Unsetenv(envListenPID)
	os.Unsetenv(envListenNames)
	if nStr == "" {
		return nil, nil, nil
	}
	if pid, err := strconv.Atoi(pidStr); err != nil || pid != os.Getpid() {
		return nil, nil, nil // meant for another process
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 0 || n > 1<<16 {
		return nil, nil, fmt.Errorf("supervisor: %s=%q is not a count of descriptors", envListenFDs, nStr)
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	set = &adoptedSet{}
	for i := 0; i < n; i++ {
		fd := listenFDsStart + i
		s := adoptedSocket{fd: fd}
		if i < len(nameList) {
			s.name = nameList[i]
		}
		unix.CloseOnExec(fd)
		var why string
		if s.udp, why = checkSocket(fd); why != "" {
			unix.Close(fd)
			skipped = append(skipped, fmt.Sprintf("fd %d (%s): %s", fd, s.name, why))
			continue
		}
		if s.sa, err = unix.Getsockname(fd); err != nil {
			unix.Close(fd)
			skipped = append(skipped, fmt.Sprintf("fd %d (%s): getsockname: %v", fd, s.name, err))
			continue
		}
		s.addr = sockaddrString(s.sa)
		set.socks = append(set.socks, s)
	}
	return set, skipped, nil
}

// checkSocket returns whether fd is a UDP socket, and why it is neither a
// listening TCP socket nor a UDP socket ("" if it is one of them).
func checkSocket(fd int) (udp bool, why string) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return false, "not a socket"
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || (dom != unix.AF_INET && dom != unix.AF_INET6) {
		return false, "not an IP socket"
	}
	switch typ {
	case unix.SOCK_DGRAM:
		return true, ""
	case unix.SOCK_STREAM:
		if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc == 0 {
			return false, "not listening"
		}
		return false, ""
	}
	return false, "neither a stream nor a datagram socket"
}

// take returns, and removes from the set, the socket bound to address: a
// UDP socket with udp, else a TCP one.
func (a *adoptedSet) take(address string, udp bool) (int, bool) {
	if a == nil || len(a.socks) == 0 {
		return -1, false
	}
	_, want, _, err := resolve(address)
	if err != nil {
		return -1, false
	}
	for i, s := range a.socks {
		if s.udp == udp && sameSockaddr(s.sa, want) {
			a.socks = append(a.socks[:i], a.socks[i+1:]...)
			return s.fd, true
		}
	}
	return -1, false
}

// closeRest closes the sockets no listener claimed and returns them.
func (a *adoptedSet) closeRest() []adoptedSocket {
	if a == nil {
		return nil
	}
	rest := a.socks
	for _, s := range rest {
		unix.Close(s.fd)
	}
	a.socks = nil
	return rest
}

// sameSockaddr reports whether two socket addresses are equal. Port 0
// never matches: a bound socket has a real port.
func sameSockaddr(a, b unix.Sockaddr) bool {
	switch a := a.(type) {
	case *unix.SockaddrInet4:
		b, ok := b.(*unix.SockaddrInet4)
		return ok && a.Port != 0 && a.Port == b.Port && a.Addr == b.Addr
	case *unix.SockaddrInet6:
		b, ok := b.(*unix.SockaddrInet6)
		return ok && a.Port != 0 && a.Port == b.Port && bytes.Equal(a.Addr[:], b.Addr[:]) && a.ZoneId == b.ZoneId
	}
	return false
}
