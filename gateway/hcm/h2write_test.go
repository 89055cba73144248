package hcm

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// gatedConn is a TCP connection whose first Write waits for open, and that
// counts its Writes.
type gatedConn struct {
	*net.TCPConn
	open   chan struct{}
	writes atomic.Int32
}

func (g *gatedConn) Write(p []byte) (int, error) {
	if g.writes.Add(1) == 1 {
		<-g.open
	}
	return g.TCPConn.Write(p)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// readN reads n bytes from c within 5 seconds.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// TestH2writerCoalescesFlushesInOrder: flushes made while a write is under
// way leave together in one write, in order.
func TestH2writerCoalescesFlushesInOrder(t *testing.T) {
	client, server := tcpPair(t)
	g := &gatedConn{TCPConn: server, open: make(chan struct{})}
	w := newH2writer(g)
	var want []byte
	for i := range 10 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
		want = append(want, p...)
		if _, err := w.Write(p); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	close(g.open)
	if got := readN(t, client, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("bytes differ from what was written:\n got %q\nwant %q", got, want)
	}
	w.close()
	if n := g.writes.Load(); n > 2 {
		t.Fatalf("10 flushes took %d writes to the connection, want at most 2", n)
	}
}

// TestH2writerCloseWritesPendingBytes: close returns once the pending bytes
// are on the connection; later writes fail.
func TestH2writerCloseWritesPendingBytes(t *testing.T) {
	client, server := tcpPair(t)
	g := &gatedConn{TCPConn: server, open: make(chan struct{})}
	w := newH2writer(g)
	for _, s := range []string{"first", "second"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan struct{})
	go func() { w.close(); close(closed) }()
	close(g.open)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return")
	}
	if got := string(readN(t, client, len("firstsecond"))); got != "firstsecond" {
		t.Fatalf("read %q, want %q", got, "firstsecond")
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Fatal("write after close succeeded")
	}
}

// TestH2writerEveryCloseWaitsForTheFlush: a second close, while the first
// one waits for the pending bytes (the final GOAWAY) to be written, waits
// too: its caller closes the connection next, which must not cut them.
func TestH2writerEveryCloseWaitsForTheFlush(t *testing.T) {
	client, server := tcpPair(t)
	g := &gatedConn{TCPConn: server, open: make(chan struct{})}
	w := newH2writer(g)
	if _, err := w.Write([]byte("goaway")); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	go func() { w.close(); close(first) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first close did not start")
		}
		runtime.Gosched()
	}
	// The gate opens a little later: a second close that returned at
	// once (the bug) finds nothing written.
	var written atomic.Bool
	go func() {
		<-time.After(100 * time.Millisecond)
		close(g.open)
	}()
	second := make(chan struct{})
	go func() {
		w.close()
		// The writer has no bytes left only once the write returned.
		w.mu.Lock()
		written.Store(!w.running && g.writes.Load() == 1)
		w.mu.Unlock()
		close(second)
	}()
	for _, ch := range []chan struct{}{second, first} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("close did not return")
		}
	}
	if !written.Load() {
		t.Fatal("the second close returned before the pending bytes were written")
	}
	if got := string(readN(t, client, len("goaway"))); got != "goaway" {
		t.Fatalf("read %q", got)
	}
}

// TestH2writerFailedWriteFailsLaterWrites: once the connection fails, the
// server's next write reports it (and the pending bytes are dropped).
func TestH2writerFailedWriteFailsLaterWrites(t *testing.T) {
	_, server := tcpPair(t)
	w := newH2writer(server)
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := w.Write([]byte("x")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed connection kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
	w.close()
}
