package tlsinspector

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// captureConn records what a TLS client writes and fails its first read, so
// that a handshake stops right after the ClientHello.
type captureConn struct {
	net.Conn
	out []byte
}

func (c *captureConn) Write(p []byte) (int, error) { c.out = append(c.out, p...); return len(p), nil }
func (c *captureConn) Read([]byte) (int, error)    { return 0, errors.New("capture: no server") }
func (c *captureConn) Close() error                { return nil }
func (c *captureConn) SetDeadline(time.Time) error { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error {
	return nil
}
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

// clientHello returns the bytes a crypto/tls client sends first with cfg.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c := &captureConn{}
	_ = tls.Client(c, cfg).Handshake()
	if len(c.out) < recordHeaderLen || c.out[0] != recordTypeHS {
		t.Fatalf("no ClientHello captured: %x", c.out)
	}
	return c.out
}

// refragment splits the handshake message carried by the records of hello
// into records of at most size bytes each.
func refragment(t testing.TB, hello []byte, size int) []byte {
	t.Helper()
	var msg []byte
	for b := hello; len(b) > 0; {
		n := int(b[3])<<8 | int(b[4])
		msg = append(msg, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
	}
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHS, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// slicePeek serves Peek from a fixed byte slice: io.EOF past its end.
func slicePeek(data []byte) peekFunc {
	return func(n int) ([]byte, error) {
		if n > len(data) {
			return data, io.EOF
		}
		return data[:n], nil
	}
}

// connCallbacks is netfilter.ListenerCallbacks over a real accepted
// connection, peeking as the listener does.
type connCallbacks struct {
	nc   net.Conn
	buf  []byte
	info netfilter.Info
}

func (c *connCallbacks) Peek(n int) ([]byte, error) {
	for len(c.buf) < n {
		tmp := make([]byte, 512)
		m, err := c.nc.Read(tmp)
		c.buf = append(c.buf, tmp[:m]...)
		if err != nil {
			return c.buf, err
		}
	}
	return c.buf, nil
}

func (c *connCallbacks) Consume(n int)         { c.buf = c.buf[min(n, len(c.buf)):] }
func (c *connCallbacks) Info() *netfilter.Info { return &c.info }

// acceptWith opens a loopback listener, runs send on a client connection
// to it, and runs the filter on the accepted side under a read deadline.
// It returns the filter's status and the callbacks (info and unconsumed
// bytes).
func acceptWith(t *testing.T, send func(c net.Conn)) (netfilter.Status, *connCallbacks) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go send(c)
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	cb := &connCallbacks{nc: s, info: netfilter.Info{TransportProtocol: "raw_buffer"}}
	st := filter{}.OnAccept(cb)
	return st, cb
}
