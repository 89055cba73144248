package writeread

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a connected client and server TCP connection on 127.0.0.1.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	_ = server.SetDeadline(time.Now().Add(10 * time.Second))
	return client, server
}

func TestWriteReadWritesThenReadsTheAnswer(t *testing.T) {
	c, s := pair(t)
	wr := New(c)
	if wr == nil {
		t.Fatal("New: nil for a TCP connection")
	}
	go func() {
		b := make([]byte, 4)
		if _, err := io.ReadFull(s, b); err == nil {
			time.Sleep(20 * time.Millisecond) // answer after the reader waits
			_, _ = s.Write(append(b, '!'))
		}
	}()
	p := make([]byte, 16)
	n, rerr, werr := wr.WriteRead([]byte("ping"), p)
	if werr != nil || rerr != nil {
		t.Fatalf("WriteRead: read %v, write %v", rerr, werr)
	}
	got := string(p[:n])
	for got != "ping!" && len(got) < 5 {
		m, err := c.Read(p[n:])
		if err != nil {
			t.Fatalf("read rest: %v", err)
		}
		n += m
		got = string(p[:n])
	}
	if got != "ping!" {
		t.Fatalf("answer %q, want %q", got, "ping!")
	}
}

func TestWriteReadImmediateAnswers(t *testing.T) {
	c, s := pair(t)
	wr := New(c)
	// The peer answers each message at once: the answer may arrive before
	// the wait starts, and must still end it.
	go func() {
		b := make([]byte, 4)
		for {
			if _, err := io.ReadFull(s, b); err != nil {
				return
			}
			if _, err := s.Write(b); err != nil {
				return
			}
		}
	}()
	p := make([]byte, 16)
	for i := range 2000 {
		n, rerr, werr := wr.WriteRead([]byte("ping"), p)
		for rerr == nil && werr == nil && n < 4 {
			var m int
			m, rerr = c.Read(p[n:4])
			n += m
		}
		if werr != nil || rerr != nil || string(p[:n]) != "ping" {
			t.Fatalf("exchange %d: %q, read %v, write %v", i, p[:n], rerr, werr)
		}
	}
}

func TestWriteReadDeadline(t *testing.T) {
	c, s := pair(t)
	wr := New(c)
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, rerr, werr := wr.WriteRead([]byte("abc"), make([]byte, 8))
	if werr != nil || !errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteRead: read %v, write %v; want a deadline error", rerr, werr)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("deadline not kept")
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "abc" {
		t.Fatalf("peer read %q, %v", b, err)
	}
}

func TestWriteReadPastDeadlineStillWrites(t *testing.T) {
	c, s := pair(t)
	wr := New(c)
	_ = c.SetReadDeadline(time.Unix(1, 0))
	_, rerr, werr := wr.WriteRead([]byte("xyz"), make([]byte, 8))
	if werr != nil || !errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteRead: read %v, write %v; want a deadline error", rerr, werr)
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "xyz" {
		t.Fatalf("peer read %q, %v", b, err)
	}
}

func TestWriteReadEOF(t *testing.T) {
	c, s := pair(t)
	wr := New(c)
	go func() {
		b := make([]byte, 2)
		_, _ = io.ReadFull(s, b)
		_ = s.(*net.TCPConn).CloseWrite()
	}()
	_, rerr, werr := wr.WriteRead([]byte("hi"), make([]byte, 8))
	if werr != nil || rerr != io.EOF {
		t.Fatalf("WriteRead: read %v, write %v; want io.EOF", rerr, werr)
	}
}

func TestNewNotTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if New(a) != nil {
		t.Fatal("New: a write-then-read path for a non-TCP connection")
	}
}
