package sockpeek

import (
	"net"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// settle waits until the server side sees what the client sent: Peek
// stops reporting Empty (for data or a close).
func settle(t *testing.T, s net.Conn) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); Peek(s) == Empty; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing arrived")
		}
	}
}

// Gone tells a peer that closed, also behind bytes it sent first (Peek
// sees only those bytes), from one that is there, with or without bytes
// waiting; and it looks while another goroutine waits in a read.
func TestGone(t *testing.T) {
	t.Run("open and quiet", func(t *testing.T) {
		_, s := pair(t)
		if Gone(s) {
			t.Fatal("gone without a close")
		}
	})
	t.Run("bytes waiting", func(t *testing.T) {
		c, s := pair(t)
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		settle(t, s)
		if Gone(s) {
			t.Fatal("gone with a pipelined request waiting")
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, s := pair(t)
		c.Close()
		settle(t, s)
		if !Gone(s) {
			t.Fatal("not gone after the peer's close")
		}
	})
	t.Run("FIN behind bytes", func(t *testing.T) {
		c, s := pair(t)
		c.Write([]byte("\x15\x03\x03\x00\x02\x01\x00")) // a TLS close_notify alert
		c.CloseWrite()
		settle(t, s)
		for deadline := time.Now().Add(5 * time.Second); !Gone(s); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not gone after bytes and a FIN (Peek: %d)", Peek(s))
			}
		}
	})
	t.Run("beside a blocked read", func(t *testing.T) {
		c, s := pair(t)
		reading := make(chan struct{})
		go func() {
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			close(reading)
			var b [1]byte
			s.Read(b[:]) // waits: nothing comes until the cleanup closes c
		}()
		<-reading
		got := make(chan bool, 1)
		go func() { got <- Gone(s) }()
		select {
		case g := <-got:
			if g {
				t.Fatal("gone without a close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Gone waited for the other goroutine's read")
		}
		_ = c
	})
}

// A Peeker sees what Peek sees, reads nothing, and allocates nothing.
func TestPeeker(t *testing.T) {
	c, s := pair(t)
	p := NewPeeker(s)
	if st := p.Peek(); st != Empty {
		t.Fatalf("quiet connection: %v, want Empty", st)
	}
	if n := testing.AllocsPerRun(100, func() { p.Peek() }); n != 0 {
		t.Errorf("Peek allocates %v times", n)
	}
	c.Write([]byte("x"))
	settle(t, s)
	if st := p.Peek(); st != Data {
		t.Fatalf("bytes waiting: %v, want Data", st)
	}
	var b [1]byte
	if n, _ := s.Read(b[:]); n != 1 || b[0] != 'x' {
		t.Fatalf("the peeked byte was consumed: read %q", b[:n])
	}
	c.Close()
	settle(t, s)
	if st := p.Peek(); st != Closed {
		t.Fatalf("closed by the peer: %v, want Closed", st)
	}
	if st := NewPeeker(&net.UnixConn{}).Peek(); st != Closed && st != Empty {
		t.Fatalf("not a usable socket: %v", st)
	}
}
