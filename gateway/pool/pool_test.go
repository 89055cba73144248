package pool

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func listen(t testing.TB) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ln.Addr().String(), ch
}

func TestPoolReusesIdleConnectionLIFO(t *testing.T) {
	addr, accepted := listen(t)
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 2, IdleTimeout: time.Minute})
	defer p.Close()
	a, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	if a.Reused {
		t.Fatal("fresh connection marked reused")
	}
	p.Put(a)
	b, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b != a || !b.Reused {
		t.Fatalf("got %p reused=%v, want the idle connection %p reused", b, b.Reused, a)
	}
	b.Close()
}

func TestPoolDiscardsConnectionClosedByUpstream(t *testing.T) {
	addr, accepted := listen(t)
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 2, IdleTimeout: time.Minute})
	defer p.Close()
	a, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	up := <-accepted
	p.Put(a)
	up.Close()
	a.idleSince = time.Now().Add(-time.Second) // idle long enough to be checked
	waitReadable(t, a.Conn)                    // the upstream's FIN has arrived
	b, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b == a || b.Reused {
		t.Fatal("a connection closed by the upstream was reused")
	}
}

// waitReadable blocks until c's socket is readable (data or EOF), with poll(2).
func waitReadable(t *testing.T, c net.Conn) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var perr error
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		_, perr = unix.Poll(fds, 5000)
		if perr == nil && fds[0].Revents == 0 {
			perr = errors.New("socket not readable within 5s")
		}
	})
	if err != nil || perr != nil {
		t.Fatal(err, perr)
	}
}

func TestPoolConnectFailureWrapsErrConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 1, IdleTimeout: time.Minute})
	if _, err := p.Get(context.Background()); err == nil || !isConnect(err) {
		t.Fatalf("err = %v, want ErrConnect", err)
	}
}

func isConnect(err error) bool {
	for e := err; e != nil; {
		if e == ErrConnect {
			return true
		}
		u, ok := e.(interface{ Unwrap() []error })
		if ok {
			for _, x := range u.Unwrap() {
				if isConnect(x) {
					return true
				}
			}
			return false
		}
		w, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = w.Unwrap()
	}
	return false
}

func BenchmarkPoolGetPut(b *testing.B) {
	addr, _ := listen(b)
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 4, IdleTimeout: time.Minute})
	defer p.Close()
	c, err := p.Get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p.Put(c)
	b.ReportAllocs()
	for b.Loop() {
		c, err := p.Get(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		p.Put(c)
	}
}

// readEOF waits until the server side of a pooled connection sees the pool
// close it.
func readEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if n, err := c.Read(b[:]); n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want the pool to close the connection", n, err)
	}
}

func TestPoolClosesIdleConnectionAtMaxConnectionDuration(t *testing.T) {
	const maxDur = 150 * time.Millisecond
	addr, accepted := listen(t)
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 2, IdleTimeout: time.Minute, MaxConnectionDuration: maxDur})
	defer p.Close()
	start := time.Now()
	a, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	p.Put(a)
	if p.Idle() != 1 {
		t.Fatalf("idle = %d after Put of a young connection, want 1", p.Idle())
	}
	readEOF(t, srv) // the reaper closes it
	if elapsed := time.Since(start); elapsed < maxDur {
		t.Fatalf("closed after %v, before max_connection_duration %v", elapsed, maxDur)
	}
	if p.Idle() != 0 {
		t.Fatalf("idle = %d after the reaper, want 0", p.Idle())
	}
	b, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b == a || b.Reused {
		t.Fatal("an expired connection was handed out again")
	}
	b.Close()
}

func TestPoolDoesNotReuseConnectionOlderThanMaxConnectionDuration(t *testing.T) {
	const maxDur = 100 * time.Millisecond
	addr, accepted := listen(t)
	// A long reaper interval is not involved: Put itself refuses.
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 2, IdleTimeout: time.Minute, MaxConnectionDuration: maxDur})
	defer p.Close()
	a, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	time.Sleep(maxDur) // the connection outlives max_connection_duration while in use
	p.Put(a)
	if p.Idle() != 0 {
		t.Fatalf("idle = %d after Put of an expired connection, want 0", p.Idle())
	}
	readEOF(t, srv)
}
