package testutil

import (
	"net"
	"testing"
)

// ListenTCP returns a TCP listener on 127.0.0.1 port 0, closed when the test
// ends.
func ListenTCP(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// DeadAddr returns a loopback address where nothing listens: the port was
// bound and released, so connecting to it is refused (unless another process
// takes the port in between, which the kernel makes unlikely by cycling
// through ephemeral ports).
func DeadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("testutil: close: %v", err)
	}
	return addr
}
