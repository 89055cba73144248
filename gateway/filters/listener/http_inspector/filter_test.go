package httpinspector

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

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

// run sends chunks from a loopback client (half-closing after them when
// closeAfter) and runs the built filter on the accepted connection.
func run(t *testing.T, transport string, closeAfter bool, chunks ...string) (netfilter.Status, *connCallbacks) {
	t.Helper()
	info, ok := registry.Lookup(Name)
	if !ok || info.Kind != registry.Listener {
		t.Fatalf("not registered: %+v", info)
	}
	fac, err := info.New().Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
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
	go func() {
		for _, s := range chunks {
			if _, err := io.WriteString(c, s); err != nil {
				return
			}
		}
		if closeAfter {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	cb := &connCallbacks{nc: s, info: netfilter.Info{TransportProtocol: transport}}
	return fac.(netfilter.ListenerFilterFactory).NewFilter().OnAccept(cb), cb
}

func TestDetectsHTTPVersionsAndH2C(t *testing.T) {
	cases := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"http/1.1", []string{"GET /index.html?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"}, []string{"http/1.1"}},
		{"http/1.0", []string{"HEAD / HTTP/1.0\r\n\r\n"}, []string{"http/1.0"}},
		{"http/1.1 byte by byte", []string{"P", "O", "ST", " /x", " HTTP", "/1.", "1\r", "\n"}, []string{"http/1.1"}},
		{"h2c preface", []string{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "\x00\x00\x00\x04\x00\x00\x00\x00\x00"}, []string{"h2c"}},
		{"h2c preface split", []string{"PRI * HTTP/2.0\r\n", "\r\nSM\r\n\r\n"}, []string{"h2c"}},
		{"tls bytes", []string{"\x16\x03\x01\x00\x04"}, nil},
		{"http/2.0 request line", []string{"GET / HTTP/2.0\r\n\r\n"}, nil},
		{"lowercase version", []string{"GET / http/1.1\r\n"}, nil},
		{"space in target", []string{"GET /a b HTTP/1.1\r\n"}, nil},
		{"ssh banner", []string{"SSH-2.0-OpenSSH_9.6\r\n"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, cb := run(t, "raw_buffer", false, tc.chunks...)
			if st != netfilter.Continue || !slices.Equal(cb.info.ALPN, tc.want) {
				t.Fatalf("status %v alpn %q, want %q", st, cb.info.ALPN, tc.want)
			}
			if len(cb.buf) == 0 || cb.buf[0] != tc.chunks[0][0] {
				t.Fatalf("peeked bytes consumed: %q", cb.buf)
			}
		})
	}
}

func TestSkipsTLSConnections(t *testing.T) {
	// nothing is sent: a filter that peeked would block until the deadline
	st, cb := run(t, "tls", false)
	if st != netfilter.Continue || cb.info.ALPN != nil || len(cb.buf) != 0 {
		t.Fatalf("status %v alpn %q peeked %q", st, cb.info.ALPN, cb.buf)
	}
}

func TestEarlyEndContinuesWithoutProtocol(t *testing.T) {
	st, cb := run(t, "raw_buffer", true, "GET / HT")
	if st != netfilter.Continue || cb.info.ALPN != nil {
		t.Fatalf("status %v alpn %q", st, cb.info.ALPN)
	}
}

func TestLongFirstLineIsNotHTTP(t *testing.T) {
	long := "GET /" + repeat('a', MaxInspectSize) + " HTTP/1.1\r\n"
	st, cb := run(t, "raw_buffer", false, long)
	if st != netfilter.Continue || cb.info.ALPN != nil {
		t.Fatalf("status %v alpn %q", st, cb.info.ALPN)
	}
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// TestOnAdoptNeverWaitsForTheNextRequest runs the filter on connections
// moved by a restart: whatever was read ahead decides the version, and
// without it the connection is HTTP/1.1 at once, without a read (the
// socket here never gets a byte, so a read would block the test).
func TestOnAdoptNeverWaitsForTheNextRequest(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	f := filter{}
	for _, tc := range []struct {
		readAhead string
		want      []string
	}{
		{"", []string{"http/1.1"}},
		{"GET / HT", []string{"http/1.1"}},
		{"GET / HTTP/1.0\r\n", []string{"http/1.0"}},
		{"POST /x HTTP/1.1\r\nHost: a\r\n", []string{"http/1.1"}},
	} {
		cb := &connCallbacks{nc: a, buf: []byte(tc.readAhead), info: netfilter.Info{Adopted: true, TransportProtocol: "raw_buffer"}}
		if st := f.OnAdopt(cb); st != netfilter.Continue || !slices.Equal(cb.info.ALPN, tc.want) {
			t.Errorf("read ahead %q: status %v, ALPN %q; want Continue, %q", tc.readAhead, st, cb.info.ALPN, tc.want)
		}
	}
}
