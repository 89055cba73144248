package tcpproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

func TestProxyEchoesAndCountsBytes(t *testing.T) {
	up := testutil.RawUpstream(t, echo)
	a, hosts := roundRobin("a", up.Addr)
	f, p := serve(t, &Config{StatPrefix: "p", Cluster: "a"}, lookupOf(a))

	msg := bytes.Repeat([]byte("sluice "), 10000)
	go func() {
		p.client.Write(msg)
		p.client.CloseWrite()
	}()
	got := readAll(t, p.client)
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(msg))
	}
	s := p.session(t)
	n := uint64(len(msg))
	if s.RxBytes != n || s.TxBytes != n || s.Cluster != "a" || s.UpstreamHost != up.Addr || s.ConnectAttempts != 1 || s.ConnID != 7 || s.Flags().String() != "-" {
		t.Fatalf("session %+v, want %d bytes each way through %s in one attempt", s, n, up.Addr)
	}
	st := f.Stats()
	if st.DownstreamCxTotal.Value() != 1 || st.DownstreamCxRxBytesTotal.Value() != n || st.DownstreamCxTxBytesTotal.Value() != n {
		t.Fatalf("stats cx %d rx %d tx %d, want 1, %d, %d", st.DownstreamCxTotal.Value(), st.DownstreamCxRxBytesTotal.Value(), st.DownstreamCxTxBytesTotal.Value(), n, n)
	}
	<-p.done
	if hosts[0].Active() != 0 {
		t.Fatalf("host active = %d after the connection ended, want 0", hosts[0].Active())
	}
}

func TestProxyPassesDownstreamHalfClose(t *testing.T) {
	// The client half-closes; the upstream reads to EOF, then sends more
	// and closes; the client reads all of it, then EOF.
	reply := bytes.Repeat([]byte("r"), 200000)
	got := make(chan []byte, 1)
	up := testutil.RawUpstream(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
		c.Write(reply)
	})
	a, _ := roundRobin("a", up.Addr)
	_, p := serve(t, &Config{StatPrefix: "p", Cluster: "a"}, lookupOf(a))

	if _, err := p.client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	p.client.CloseWrite()
	select {
	case b := <-got:
		if string(b) != "request" {
			t.Fatalf("upstream read %q, want %q", b, "request")
		}
	case <-time.After(ioTimeout):
		t.Fatal("the upstream never saw EOF")
	}
	if b := readAll(t, p.client); !bytes.Equal(b, reply) {
		t.Fatalf("client read %d bytes, want %d", len(b), len(reply))
	}
}

func TestProxyPassesUpstreamHalfClose(t *testing.T) {
	// The upstream greets and half-closes; the client sees EOF, then still
	// sends, and the upstream gets it.
	got := make(chan []byte, 1)
	up := testutil.RawUpstream(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- b
	})
	a, _ := roundRobin("a", up.Addr)
	_, p := serve(t, &Config{StatPrefix: "p", Cluster: "a"}, lookupOf(a))

	if b := readAll(t, p.client); string(b) != "hello" {
		t.Fatalf("client read %q, want hello then EOF", b)
	}
	p.client.Write([]byte("after EOF"))
	p.client.CloseWrite()
	select {
	case b := <-got:
		if string(b) != "after EOF" {
			t.Fatalf("upstream read %q, want %q", b, "after EOF")
		}
	case <-time.After(ioTimeout):
		t.Fatal("the upstream never saw the client's bytes and EOF")
	}
	p.session(t)
}

func TestProxyRetriesConnectOnAnotherHost(t *testing.T) {
	up := testutil.RawUpstream(t, echo)
	dead := testutil.DeadAddr(t)
	a, _ := roundRobin("a", dead, up.Addr)
	f, p := serve(t, &Config{StatPrefix: "p", Cluster: "a", MaxConnectAttempts: 2}, lookupOf(a))

	p.client.Write([]byte("x"))
	p.client.CloseWrite()
	if b := readAll(t, p.client); string(b) != "x" {
		t.Fatalf("read %q, want x", b)
	}
	s := p.session(t)
	if s.ConnectAttempts != 2 || s.UpstreamHost != up.Addr || f.Stats().UpstreamCxConnectFail.Value() != 1 {
		t.Fatalf("session %+v, connect failures %d; want 2 attempts ending on %s, 1 failure", s, f.Stats().UpstreamCxConnectFail.Value(), up.Addr)
	}
}

func TestProxyClosesDownstreamWhenEveryAttemptFails(t *testing.T) {
	a, _ := roundRobin("a", testutil.DeadAddr(t), testutil.DeadAddr(t))
	f, p := serve(t, &Config{StatPrefix: "p", Cluster: "a", MaxConnectAttempts: 2}, lookupOf(a))

	expectClosed(t, p.client)
	s := p.session(t)
	if s.ConnectAttempts != 2 || s.Flags().String() != "UF" || f.Stats().UpstreamConnectAttemptsExceeded.Value() != 1 {
		t.Fatalf("session %+v (flags %s), attempts exceeded %d; want 2 attempts, UF, 1", s, s.Flags(), f.Stats().UpstreamConnectAttemptsExceeded.Value())
	}
}

func TestProxyClosesDownstreamWithoutHealthyHost(t *testing.T) {
	a, _ := roundRobin("a")
	f, p := serve(t, &Config{StatPrefix: "p", Cluster: "a"}, lookupOf(a))

	expectClosed(t, p.client)
	if s := p.session(t); s.Flags().String() != "UH" || f.Stats().DownstreamCxNoRoute.Value() != 1 {
		t.Fatalf("flags %s, no_route %d; want UH, 1", s.Flags(), f.Stats().DownstreamCxNoRoute.Value())
	}
}

func TestProxyIdleTimeoutClosesBothSides(t *testing.T) {
	upClosed := make(chan struct{})
	up := testutil.RawUpstream(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		close(upClosed)
	})
	a, _ := roundRobin("a", up.Addr)
	const idle = 100 * time.Millisecond
	f, p := serve(t, &Config{StatPrefix: "p", Cluster: "a", IdleTimeout: dur(idle)}, lookupOf(a))

	start := time.Now()
	p.client.Write([]byte("x"))
	expectClosed(t, p.client)
	if el := time.Since(start); el < idle {
		t.Fatalf("closed after %v, before the idle timeout of %v", el, idle)
	}
	select {
	case <-upClosed:
	case <-time.After(ioTimeout):
		t.Fatal("the upstream connection stayed open")
	}
	if s := p.session(t); !s.IdleTimedOut || f.Stats().IdleTimeout.Value() != 1 {
		t.Fatalf("session %+v, idle_timeout %d; want the idle flag and 1", s, f.Stats().IdleTimeout.Value())
	}
}

func TestProxyAbortsBothSidesOnUpstreamReset(t *testing.T) {
	up := testutil.RawUpstream(t, func(c net.Conn) {
		var b [1]byte
		c.Read(b[:])
		testutil.Reset(c)
	})
	a, _ := roundRobin("a", up.Addr)
	_, p := serve(t, &Config{StatPrefix: "p", Cluster: "a"}, lookupOf(a))

	p.client.Write([]byte("x"))
	expectClosed(t, p.client)
	p.session(t)
}
