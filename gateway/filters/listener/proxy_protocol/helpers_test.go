package proxyprotocol

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// v2 builds a binary header: command, family/transport byte, addresses
// (src, dst; IPv4 or IPv6 by src) and TLVs.
func v2(cmd, famTrans byte, src, dst netip.AddrPort, tlvs ...TLV) []byte {
	var body []byte
	if src.IsValid() {
		body = append(body, src.Addr().AsSlice()...)
		body = append(body, dst.Addr().AsSlice()...)
		body = binary.BigEndian.AppendUint16(body, src.Port())
		body = binary.BigEndian.AppendUint16(body, dst.Port())
	}
	for _, t := range tlvs {
		body = append(body, t.Type)
		body = binary.BigEndian.AppendUint16(body, uint16(len(t.Value)))
		body = append(body, t.Value...)
	}
	b := append([]byte(nil), sigV2...)
	b = append(b, 0x20|cmd, famTrans)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// slicePeek serves Peek from a fixed byte slice: io.EOF past its end.
func slicePeek(data []byte) func(int) ([]byte, error) {
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

// rest reads what is left of the stream after the filter: the unconsumed
// peeked bytes, then the socket until EOF.
func (c *connCallbacks) rest(t *testing.T) string {
	b, err := io.ReadAll(c.nc)
	if err != nil {
		t.Fatal(err)
	}
	return string(c.buf) + string(b)
}

// acceptWith opens a loopback listener, writes chunks from a client (then
// half-closes it), and runs f on the accepted side.
func acceptWith(t *testing.T, f netfilter.ListenerFilter, chunks ...[]byte) (netfilter.Status, *connCallbacks) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		for _, b := range chunks {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	cb := &connCallbacks{nc: s, info: netfilter.Info{
		RemoteAddr: s.RemoteAddr().(*net.TCPAddr).AddrPort(),
		LocalAddr:  s.LocalAddr().(*net.TCPAddr).AddrPort(),
	}}
	return f.OnAccept(cb), cb
}

func chunksOf(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(size, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}
