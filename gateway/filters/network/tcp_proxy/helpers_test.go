package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/lb"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/pool"
)

// ioTimeout bounds every network wait of a test.
const ioTimeout = 10 * time.Second

// downConn is a downstream connection as the filter sees it: a real TCP
// socket with the rest of netfilter.Conn stubbed.
type downConn struct {
	*net.TCPConn
	info netfilter.Info
}

func (c *downConn) Info() *netfilter.Info { return &c.info }
func (c *downConn) SetIdle(bool)          {}
func (c *downConn) Draining() bool        { return false }
func (c *downConn) CanHandoff() bool      { return false }
func (c *downConn) DrainClose() bool      { return false }
func (c *downConn) Park()                 {}
func (c *downConn) Handoff([]byte) bool   { return false }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln := testutil.ListenTCP(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return cc.(*net.TCPConn), sc.(*net.TCPConn)
}

// roundRobin returns a target cycling over hosts at addrs, in order.
func roundRobin(name string, addrs ...string) (target, []*cluster.Host) {
	hosts := make([]*cluster.Host, len(addrs))
	for i, a := range addrs {
		hosts[i] = &cluster.Host{Address: a, Pool: pool.New(pool.Options{Address: a, ConnectTimeout: time.Second})}
	}
	var next atomic.Uint64
	return target{
		name:           name,
		connectTimeout: time.Second,
		pick: func(*lb.Request) (*cluster.Host, error) {
			if len(hosts) == 0 {
				return nil, cluster.ErrNoHealthyUpstream
			}
			return hosts[(next.Add(1)-1)%uint64(len(hosts))], nil
		},
	}, hosts
}

// lookupOf resolves names among ts.
func lookupOf(ts ...target) func(string) (target, bool) {
	return func(name string) (target, bool) {
		for _, t := range ts {
			if t.name == name {
				return t, true
			}
		}
		return target{}, false
	}
}

// proxied is one connection served by a factory's filter.
type proxied struct {
	client *net.TCPConn
	done   chan struct{} // closed when Serve returned and the conn closed
	sess   chan *Session // receives the session at the end
}

// serve builds c with lookup and serves one fresh downstream connection
// with it, closing the connection after Serve as the manager does.
func serve(t *testing.T, c *Config, lookup func(string) (target, bool)) (*Factory, *proxied) {
	t.Helper()
	f, err := c.build(nil, lookup)
	if err != nil {
		t.Fatal(err)
	}
	return f, serveWith(t, f)
}

func serveWith(t *testing.T, f *Factory) *proxied {
	t.Helper()
	client, server := tcpPair(t)
	p := &proxied{client: client, done: make(chan struct{}), sess: make(chan *Session, 1)}
	f.onEnd = func(s *Session) { p.sess <- s }
	dc := &downConn{TCPConn: server, info: netfilter.Info{ID: 7}}
	fl := f.NewFilter(nil).(netfilter.Terminal)
	go func() {
		defer close(p.done)
		fl.Serve(dc)
		dc.Close()
	}()
	t.Cleanup(func() {
		client.Close()
		<-p.done
	})
	return p
}

// session waits for the connection's session.
func (p *proxied) session(t *testing.T) *Session {
	t.Helper()
	select {
	case s := <-p.sess:
		return s
	case <-time.After(ioTimeout):
		t.Fatal("the connection did not end")
		return nil
	}
}

// readAll reads c to EOF within ioTimeout.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (after %d bytes)", err, len(b))
	}
	return b
}

// echo is an upstream that echoes until EOF, then closes.
func echo(c net.Conn) {
	io.Copy(c, c)
}

// expectClosed asserts that c is closed by the peer without sending data.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, err %v; want the connection closed", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection stayed open: %v", err)
	}
}

func dur(d time.Duration) *config.Duration { return &config.Duration{Duration: d} }
