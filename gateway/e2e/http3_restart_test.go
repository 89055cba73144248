package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"github.com/sluice-proxy/sluice/gateway/quicroute"
)

// HTTP/3 across reloads, upgrades and worker crashes: QUIC connections are
// owned by the worker whose id their connection ids carry, and packets the
// kernel gives to another worker (another generation on the same socket,
// another slot) are forwarded to it.

// h3RestartConfig is h3Config with a short drain (old generations leave
// soon, so that upgrades can follow each other) and workers workers.
func h3RestartConfig(t *testing.T, workers int, cert, key, upstream string) string {
	t.Helper()
	cfg := h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, upstream)
	out := strings.Replace(cfg, "[server]\nworkers = 2\n", fmt.Sprintf("[server]\nworkers = %d\ndrain_timeout = \"3s\"\ndrain_jitter = \"0s\"\n", workers), 1)
	if out == cfg {
		t.Fatal("h3Config changed: cannot set workers and drain_timeout")
	}
	return out
}

// ownerSniffer is a client's UDP socket that notes which sluice worker
// answered its handshake: the source connection id of the server's long
// header packets names the owner (quicroute.ParseID).
type ownerSniffer struct {
	net.PacketConn
	owner *atomic.Int64 // generation<<16 | slot, +1; 0 = unknown
}

func (s *ownerSniffer) SetReadBuffer(n int) error {
	return s.PacketConn.(*net.UDPConn).SetReadBuffer(n)
}
func (s *ownerSniffer) SetWriteBuffer(n int) error {
	return s.PacketConn.(*net.UDPConn).SetWriteBuffer(n)
}

func (s *ownerSniffer) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := s.PacketConn.ReadFrom(b)
	if err == nil && n > 6 && b[0]&0x80 != 0 {
		if d := 6 + int(b[5]); n > d {
			if sl := int(b[d]); n >= d+1+sl {
				if o, ok := quicroute.ParseID(b[d+1 : d+1+sl]); ok {
					s.owner.Store(int64(o.Generation)<<16 | int64(o.Slot) + 1)
				}
			}
		}
	}
	return n, addr, err
}

// h3LongClient is an HTTP/3 client that keeps one connection as long as the
// server lets it, posts in a loop and records failures, dials, and the
// worker that owns its current connection.
type h3LongClient struct {
	longClient
	owner atomic.Int64
}

func newH3LongClient(t *testing.T, id int, ca *testutil.CA, idle time.Duration) *h3LongClient {
	cl := &h3LongClient{longClient: longClient{id: id}}
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool},
		QUICConfig:      &quic.Config{MaxIdleTimeout: idle},
		Dial: func(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			raddr, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return nil, err
			}
			qt := &quic.Transport{Conn: &ownerSniffer{PacketConn: udp, owner: &cl.owner}}
			conn, err := qt.DialEarly(ctx, raddr, tlsConf, qc)
			if err != nil {
				qt.Close()
				udp.Close()
				return nil, err
			}
			cl.dials.Add(1)
			context.AfterFunc(conn.Context(), func() { qt.Close(); udp.Close() })
			return conn, nil
		},
	}
	t.Cleanup(func() { tr.Close() })
	cl.c = &http.Client{Transport: tr, Timeout: ioTimeout}
	return cl
}

// ownerOf returns the generation and slot of the client's connection.
func (cl *h3LongClient) ownerOf() (gen, slot int, known bool) {
	v := cl.owner.Load()
	if v == 0 {
		return 0, 0, false
	}
	v--
	return int(v >> 16), int(v & 0xffff), true
}

// slowEcho echoes the request body, after 300 ms for ?slow=1.
func slowEcho(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("slow") != "" {
		time.Sleep(300 * time.Millisecond) // the upstream's work, not synchronisation
	}
	io.Copy(w, r.Body)
}

// TestHTTP3ConnectionsSurviveReloadsAndUpgrades: HTTP/3 clients post
// concurrently over long-lived connections while sluice reloads 5 times and
// upgrades 5 times. No request may fail; after each restart every client
// ends up on a connection owned by the new generation (the old one sent
// GOAWAY, the new connection went to the new generation); and packets were
// forwarded between generations, which is what keeps the old generation's
// connections alive while both read the same sockets.
func TestHTTP3ConnectionsSurviveReloadsAndUpgrades(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(slowEcho))
	cfg := h3RestartConfig(t, 2, cert, key, up.Addr)
	p := gwtest.Start(t, cfg)
	url := "https://" + p.Addr("h3") + "/work"

	var clients []*h3LongClient
	for i := range 6 {
		clients = append(clients, newH3LongClient(t, i, ca, 0))
	}
	stopClients := runLong(url, clients)
	defer stopClients()
	waitProgress(t, clients, 4)

	// onGeneration waits until every client's connection is owned by gen.
	onGeneration := func(gen int, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for _, cl := range clients {
			for {
				if g, _, ok := cl.ownerOf(); ok && g == gen {
					break
				}
				if time.Now().After(deadline) {
					g, s, _ := cl.ownerOf()
					t.Fatalf("after %s client %d is on generation %d slot %d, want generation %d", what, cl.id, g, s, gen)
				}
				time.Sleep(5 * time.Millisecond) // polling the clients' connections
			}
		}
	}
	onGeneration(1, "start")

	gen := 1
	supervisor := p.Pid()
	for r := 1; r <= 10; r++ {
		gen++
		if r%2 == 1 {
			what := fmt.Sprintf("reload %d", r/2+1)
			reloadOK(t, p, what)
			onGeneration(gen, what)
		} else {
			what := fmt.Sprintf("upgrade %d", r/2)
			next := upgradeOK(t, p, what)
			onGeneration(gen, what)
			// The next upgrade needs the previous supervisor gone (its
			// workers drain for up to drain_timeout).
			waitPidGone(t, supervisor)
			supervisor = next
		}
		waitProgress(t, clients, 3)
	}
	stopClients()
	total := int64(0)
	for _, cl := range clients {
		total += cl.ok.Load()
		cl.check(t, 1, 11, "across 10 restarts")
	}
	var forwarded, received uint64
	for _, e := range p.Logs() {
		if e.Msg() == "quic packets routed" {
			f, _ := e.Int("forwarded")
			r, _ := e.Int("received")
			forwarded += uint64(f)
			received += uint64(r)
		}
	}
	t.Logf("%d requests; old generations' workers forwarded %d packets and received %d", total, forwarded, received)
	if forwarded == 0 || received == 0 {
		t.Errorf("no QUIC packet was forwarded between generations (forwarded %d, received %d): routing was not exercised", forwarded, received)
	}
}

// TestHTTP3WorkerKillLeavesOtherWorkersConnections: kill -9 of one of two
// workers; the clients whose connections the other worker owns go on with
// no failure and no new connection, and the others recover on new
// connections once they notice theirs died.
func TestHTTP3WorkerKillLeavesOtherWorkersConnections(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(slowEcho))
	p := gwtest.Start(t, h3RestartConfig(t, 2, cert, key, up.Addr))
	url := "https://" + p.Addr("h3") + "/work"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	var clients []*h3LongClient
	bySlot := map[int][]*h3LongClient{}
	// The kernel spreads clients over the slots by their address: start
	// clients until both slots have some.
	for i := 0; len(bySlot[0]) < 2 || len(bySlot[1]) < 2; i++ {
		if i == 40 {
			t.Fatalf("40 clients and a slot has fewer than 2: %d on slot 0, %d on slot 1", len(bySlot[0]), len(bySlot[1]))
		}
		cl := newH3LongClient(t, i, ca, 2*time.Second)
		clients = append(clients, cl)
		wg.Go(func() { cl.run(url, stop) })
		waitProgress(t, []*h3LongClient{cl}, 1)
		_, slot, _ := cl.ownerOf()
		bySlot[slot] = append(bySlot[slot], cl)
	}
	waitProgress(t, clients, 2)

	victim := p.WorkerPids()[0]
	mark := p.Mark()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	started := p.WaitLogSince(t, mark, "worker started", func(e map[string]any) bool {
		return intField(e, "slot") == 0 && intField(e, "pid") != victim
	}, 15*time.Second)
	newPid := intField(started, "pid")
	p.WaitLogSince(t, mark, "worker ready", func(e map[string]any) bool { return intField(e, "pid") == newPid }, 15*time.Second)

	survivors := bySlot[1]
	dials := make([]int64, len(survivors))
	fails := make([]int, len(survivors))
	for i, cl := range survivors {
		dials[i], fails[i] = cl.dials.Load(), len(cl.failureList())
	}
	waitProgress(t, survivors, 10)
	for i, cl := range survivors {
		if f := cl.failureList(); len(f) > 0 {
			t.Errorf("client %d on the surviving worker: %d failed requests: %q", cl.id, len(f), f)
		}
		if d := cl.dials.Load(); d != dials[i] || d != 1 {
			t.Errorf("client %d on the surviving worker dialed %d connections, want 1", cl.id, d)
		}
	}
	// The killed worker's clients lose their connection (its state died
	// with the process) and recover on a new one.
	waitProgress(t, bySlot[0], 3)
	for _, cl := range bySlot[0] {
		if cl.dials.Load() < 2 {
			t.Errorf("client %d of the killed worker still on its first connection", cl.id)
		}
	}
}

// TestHTTP3ConnectionMigratesAcrossWorkers: a client moves its connection
// to new UDP sockets (new source ports, as after a NAT rebinding) three
// times, each a port the kernel hashes to the socket of the worker that
// does not own the connection, which forwards by connection id to the
// owner. Every request succeeds on the one connection, and the workers
// report forwarded packets.
func TestHTTP3ConnectionMigratesAcrossWorkers(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(slowEcho))
	p := gwtest.Start(t, h3RestartConfig(t, 2, cert, key, up.Addr))
	url := "https://" + p.Addr("h3") + "/work"

	var conn *quic.Conn
	var dials, owner atomic.Int64
	raddr, err := net.ResolveUDPAddr("udp", p.Addr("h3"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool},
		Dial: func(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			raddr, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { udp.Close() })
			// A client with zero-length connection ids (quic-go's default)
			// cannot move its connection to another path.
			qt := &quic.Transport{Conn: &ownerSniffer{PacketConn: udp, owner: &owner}, ConnectionIDLength: 8}
			t.Cleanup(func() { qt.Close() })
			c, err := qt.DialEarly(ctx, raddr, tlsConf, qc)
			if err == nil {
				conn = c
				dials.Add(1)
			}
			return c, err
		},
	}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: ioTimeout}
	post := func(what string) {
		t.Helper()
		resp, err := c.Post(url, "text/plain", strings.NewReader(what))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(b) != what {
			t.Fatalf("%s: %d %q %v", what, resp.StatusCode, b, err)
		}
	}
	post("before migrating")
	ownerSlot := -1
	if o := owner.Load(); o != 0 {
		ownerSlot = int((o - 1) & 0xffff)
	} else {
		t.Fatal("the server's handshake packets named no owner")
	}
	// Each move goes to a client port that the kernel hashes to the worker
	// that does not own the connection, so that every packet on the new
	// path needs forwarding. Which worker a port hashes to is learnt with a
	// throwaway connection from it: its handshake names the worker that
	// took its first packet.
	const moves = 3
	otherPort := func(i int) *quic.Transport {
		for range 64 {
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { udp.Close() })
			var o atomic.Int64
			qt := &quic.Transport{Conn: &ownerSniffer{PacketConn: udp, owner: &o}, ConnectionIDLength: 8}
			t.Cleanup(func() { qt.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			probe, err := qt.Dial(ctx, raddr, &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool, NextProtos: []string{http3.NextProtoH3}}, nil)
			cancel()
			if err != nil {
				t.Fatalf("move %d: throwaway connection: %v", i, err)
			}
			probe.CloseWithError(0, "")
			if v := o.Load(); v != 0 && int((v-1)&0xffff) != ownerSlot {
				return qt
			}
		}
		t.Fatalf("move %d: 64 client ports all hashed to the owner's socket", i)
		return nil
	}
	// Path validation is the client's to retry: a probe needs a connection
	// id the server has not issued yet when moves come faster than the
	// NEW_CONNECTION_ID / RETIRE_CONNECTION_ID round trips (under load), and
	// then times out while the client stays on its current path, as a real
	// client would. A failed move sends a request on the current path
	// (round trips that replenish the ids) and tries again, up to five
	// times.
	for i := range moves {
		var path *quic.Path
		var err error
		for attempt := range 5 {
			if attempt > 0 {
				post(fmt.Sprintf("on the current path before move %d, attempt %d", i, attempt+1))
			}
			qt := otherPort(i)
			if path, err = conn.AddPath(qt); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = path.Probe(ctx)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("move %d: five paths failed validation, the last: %v", i, err)
		}
		if err := path.Switch(); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
		post(fmt.Sprintf("after move %d", i))
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("the client dialed %d connections, want 1 (the connection migrated %d times)", d, moves)
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("sluice exited %d", code)
	}
	var forwarded, received int
	for _, e := range p.Logs() {
		if e.Msg() == "quic packets routed" {
			f, _ := e.Int("forwarded")
			r, _ := e.Int("received")
			forwarded, received = forwarded+f, received+r
		}
	}
	if forwarded == 0 || received == 0 {
		t.Fatalf("after %d moves no packet was forwarded between workers (forwarded %d, received %d)", moves, forwarded, received)
	}
	t.Logf("forwarded %d packets, received %d", forwarded, received)
}
