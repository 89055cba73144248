package quicroute

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
)

// sharedSocket returns n *net.UDPConn on one UDP socket, as the workers of
// two generations of one slot have it.
func sharedSocket(t *testing.T, n int) []*net.UDPConn {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var conns []*net.UDPConn
	for range n {
		f, err := udp.File()
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	return conns
}

// collector reads a Conn in batches, as quic-go does, and records each
// datagram's payload by the client address it came from.
type collector struct {
	mu   sync.Mutex
	got  map[string]string // payload → client address
	done chan struct{}
}

func collect(c *Conn) *collector {
	col := &collector{got: map[string]string{}, done: make(chan struct{})}
	go func() {
		defer close(col.done)
		ms := make([]ipv4.Message, 8)
		for i := range ms {
			ms[i].Buffers = [][]byte{make([]byte, 1500)}
			ms[i].OOB = make([]byte, 128)
		}
		for {
			n, err := c.ReadBatch(ms, 0)
			if err != nil {
				return
			}
			col.mu.Lock()
			for _, m := range ms[:n] {
				p := string(m.Buffers[0][:m.N])
				col.got[p[strings.LastIndexByte(p, '|')+1:]] = m.Addr.String()
			}
			col.mu.Unlock()
		}
	}()
	return col
}

func (col *collector) has(payload string) (string, bool) {
	col.mu.Lock()
	defer col.mu.Unlock()
	a, ok := col.got[payload]
	return a, ok
}

// TestConnDeliversToOwner runs a draining worker (generation 1) and its
// successor (generation 2) of slot 0 on one UDP socket, as after a reload,
// and a client sending packets of connections of each and packets opening
// new connections. Whichever process the kernel gives a datagram to, each
// ends up at its owner, with the client's address: generation 1 gets its
// own connections' packets, generation 2 its own and the new connections.
func TestConnDeliversToOwner(t *testing.T) {
	socks := sharedSocket(t, 2)
	old, err := New(socks[0], NewOwner(1, 0), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	cur, err := New(socks[1], NewOwner(2, 0), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	old.SetSuccessor(2)
	oldGot, curGot := collect(old), collect(cur)

	client, err := net.DialUDP("udp", nil, old.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	oldID, curID := newID(t, NewOwner(1, 0)), newID(t, NewOwner(2, 0))
	var all []sent
	for i := range 300 {
		var p []byte
		var s sent
		switch i % 3 {
		case 0:
			s = sent{"old-" + strconv.Itoa(i), "old"}
			p = shortPacket(oldID, "|"+s.payload)
		case 1:
			s = sent{"cur-" + strconv.Itoa(i), "cur"}
			p = shortPacket(curID, "|"+s.payload)
		default:
			s = sent{"new-" + strconv.Itoa(i), "cur"}
			p = longPacket([]byte("client-chosen-id"), "|"+s.payload)
		}
		if _, err := client.Write(p); err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
		if i%50 == 49 {
			waitDelivered(t, all, oldGot, curGot, client.LocalAddr().String())
		}
	}
	waitDelivered(t, all, oldGot, curGot, client.LocalAddr().String())
	if old.Stats().Forwarded.Load()+cur.Stats().Forwarded.Load() == 0 {
		t.Error("nothing was forwarded: the test did not exercise forwarding")
	}
	t.Logf("forwarded: old %d, cur %d", old.Stats().Forwarded.Load(), cur.Stats().Forwarded.Load())
}

// waitDelivered waits until every datagram sent reached its owner only.
func waitDelivered(t *testing.T, all []sent, oldGot, curGot *collector, from string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range all {
		want, other := curGot, oldGot
		if s.owner == "old" {
			want, other = oldGot, curGot
		}
		for {
			if addr, ok := want.has(s.payload); ok {
				if addr != from {
					t.Fatalf("%s arrived from %s, want %s", s.payload, addr, from)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached %s", s.payload, s.owner)
			}
			time.Sleep(time.Millisecond)
		}
		if _, ok := other.has(s.payload); ok {
			t.Fatalf("%s reached the worker that does not own it", s.payload)
		}
	}
}

// TestConnOwnerGoneDeliversLocally: a packet whose owner has exited stays
// with the worker that read it (quic-go then drops it).
func TestConnOwnerGoneDeliversLocally(t *testing.T) {
	socks := sharedSocket(t, 1)
	c, err := New(socks[0], NewOwner(3, 0), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := collect(c)
	client, err := net.DialUDP("udp", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.Write(shortPacket(newID(t, NewOwner(2, 0)), "|orphan"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := got.has("orphan"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a packet of a gone owner was not delivered locally")
		}
		time.Sleep(time.Millisecond)
	}
	if c.Stats().ForwardFailed.Load() != 1 {
		t.Errorf("ForwardFailed = %d, want 1", c.Stats().ForwardFailed.Load())
	}
}

// arrives waits until payload reached col.
func arrives(t *testing.T, col *collector, payload string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := col.has(payload); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never arrived", payload)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnSuccessorAnnouncedBeforeItExistsAndWithdrawn: the supervisor
// names a reload's generation before its workers start. Until the
// successor's worker exists, a packet opening a connection stays with the
// worker that read it; once it exists, such packets go to it; a withdrawn
// successor (a failed reload: 0) keeps them here again.
func TestConnSuccessorAnnouncedBeforeItExistsAndWithdrawn(t *testing.T) {
	socks := sharedSocket(t, 2)
	old, err := New(socks[0], NewOwner(1, 0), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.SetSuccessor(2)
	oldGot := collect(old)
	client, err := net.DialUDP("udp", nil, old.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	opening := func(payload string) { client.Write(longPacket([]byte("client-chosen-id"), "|"+payload)) }

	opening("before")
	arrives(t, oldGot, "before")
	if n := old.Stats().ForwardFailed.Load(); n != 1 {
		t.Fatalf("ForwardFailed = %d before the successor exists, want 1", n)
	}

	// The successor's worker exists (its forwarding name is bound) but
	// does not read the socket yet: only old reads what the client sends.
	cur, err := New(socks[1], NewOwner(2, 0), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	opening("after")
	deadline := time.Now().Add(5 * time.Second)
	for old.Stats().Forwarded.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Forwarded = %d once the successor exists, want 1", old.Stats().Forwarded.Load())
		}
		time.Sleep(time.Millisecond)
	}

	old.SetSuccessor(0)
	opening("withdrawn")
	arrives(t, oldGot, "withdrawn")
	if n := old.Stats().Forwarded.Load(); n != 1 {
		t.Fatalf("Forwarded = %d after the successor was withdrawn, want still 1", n)
	}
	if n := old.Stats().ForwardFailed.Load(); n != 1 {
		t.Fatalf("ForwardFailed = %d after the successor was withdrawn, want still 1: no forward is tried", n)
	}

	curGot := collect(cur)
	arrives(t, curGot, "after")
	for _, p := range []string{"before", "withdrawn"} {
		if _, ok := curGot.has(p); ok {
			t.Errorf("%s reached the successor", p)
		}
	}
	if _, ok := oldGot.has("after"); ok {
		t.Error("after reached the old worker too")
	}
}

// TestConnCloseEndsRead: Close and a past read deadline end a blocked
// ReadBatch, as quic-go's Transport.Close needs.
func TestConnCloseEndsRead(t *testing.T) {
	socks := sharedSocket(t, 1)
	c, err := New(socks[0], NewOwner(3, 0), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	col := collect(c)
	c.SetReadDeadline(time.Now())
	select {
	case <-col.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a past read deadline did not end ReadBatch")
	}
	c.Close()
}

// sent is a datagram of the test and the worker that owns it.
type sent struct{ payload, owner string }
