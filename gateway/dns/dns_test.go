package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// server is a real DNS server on 127.0.0.1 port 0, UDP and TCP on the same
// port, answering from a table it lets the test change. Over UDP it
// truncates an answer larger than the client's EDNS0 payload size (512
// bytes without EDNS0), as servers do: TC set, no answer records.
type server struct {
	addr       string
	queries    atomic.Int64
	tcpQueries atomic.Int64

	mu      sync.Mutex
	records map[string][]netip.Addr // guarded by mu; name with final dot
	ttl     uint32
}

func newServer(t *testing.T) *server {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ln == nil; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if i == 20 {
				t.Fatalf("no port free for both UDP and TCP: %v", err)
			}
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	s := &server{addr: pc.LocalAddr().String(), records: map[string][]netip.Addr{}, ttl: 30}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := s.answer(buf[:n], true); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serveTCP(c)
		}
	}()
	return s
}

// serveTCP answers the length-prefixed queries of one TCP connection.
func (s *server) serveTCP(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, int(l[0])<<8|int(l[1]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		s.tcpQueries.Add(1)
		out := s.answer(q, false)
		if out == nil {
			return
		}
		if _, err := c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...)); err != nil {
			return
		}
	}
}

func (s *server) set(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	s.records[name] = as
}

func (s *server) answer(q []byte, udp bool) []byte {
	s.queries.Add(1)
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	limit := 512
	for _, a := range m.Additionals {
		if a.Header.Type == dnsmessage.TypeOPT {
			limit = int(a.Header.Class)
		}
	}
	m.Additionals = nil
	qq := m.Questions[0]
	s.mu.Lock()
	addrs, ok := s.records[qq.Name.String()]
	ttl := s.ttl
	s.mu.Unlock()
	m.Header.Response = true
	if !ok {
		m.Header.RCode = dnsmessage.RCodeNameError
	}
	// A CNAME first, as recursive servers send, which the client skips.
	m.Answers = append(m.Answers, dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: qq.Name, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: 1},
		Body:   &dnsmessage.CNAMEResource{CNAME: qq.Name},
	})
	for i, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: ttl + uint32(i)}
		switch {
		case a.Is4() && qq.Type == dnsmessage.TypeA:
			h.Type = dnsmessage.TypeA
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && qq.Type == dnsmessage.TypeAAAA:
			h.Type = dnsmessage.TypeAAAA
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	if udp && len(out) > limit {
		m.Header.Truncated = true
		m.Answers = nil
		if out, err = m.Pack(); err != nil {
			return nil
		}
	}
	return out
}

func TestLookupAAndAAAAWithTTL(t *testing.T) {
	s := newServer(t)
	s.set("api.example.", "10.0.0.2", "10.0.0.1", "2001:db8::1")
	r := &Resolver{Servers: []string{s.addr}, Timeout: time.Second}
	addrs, ttl, err := r.Lookup(context.Background(), "api.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")}
	if !slices.Equal(addrs, want) || ttl != 30*time.Second {
		t.Fatalf("Lookup = %v ttl %v, want %v ttl 30s", addrs, ttl, want)
	}
	if _, _, err := r.Lookup(context.Background(), "missing.example"); !errors.Is(err, ErrNoAddresses) {
		t.Fatalf("NXDOMAIN: %v, want ErrNoAddresses", err)
	}
	if a, _, err := r.Lookup(context.Background(), "192.0.2.7"); err != nil || a[0] != netip.MustParseAddr("192.0.2.7") {
		t.Fatalf("IP literal: %v %v", a, err)
	}
}

// TestLargeAnswersComeWhole: an answer over 512 bytes comes over UDP
// (the query advertises 1232 bytes with EDNS0); one over 1232 bytes comes
// truncated and is asked again over TCP: every address arrives.
func TestLargeAnswersComeWhole(t *testing.T) {
	s := newServer(t)
	var mid, many []string
	for i := range 200 {
		a := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		if i < 50 {
			mid = append(mid, a)
		}
		many = append(many, a)
	}
	s.set("mid.example.", mid...)   // about 850 bytes
	s.set("many.example.", many...) // about 3250 bytes
	r := &Resolver{Servers: []string{s.addr}, Timeout: 5 * time.Second}
	check := func(name string, want []string, wantTCP int64) {
		t.Helper()
		before := s.tcpQueries.Load()
		addrs, _, err := r.Lookup(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(addrs) != len(want) {
			t.Fatalf("%s: %d addresses, want %d", name, len(addrs), len(want))
		}
		for i, a := range addrs {
			if a.String() != want[i] {
				t.Fatalf("%s: address %d is %v, want %s", name, i, a, want[i])
			}
		}
		if got := s.tcpQueries.Load() - before; got != wantTCP {
			t.Fatalf("%s: %d queries over TCP, want %d", name, got, wantTCP)
		}
	}
	check("mid.example", mid, 0)
	check("many.example", many, 1) // the A query; the AAAA answer is empty
}

func TestLookupFallsBackToNextServer(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	s := newServer(t)
	s.set("api.example.", "10.0.0.1")
	r := &Resolver{Servers: []string{dead.LocalAddr().String(), s.addr}, Timeout: 50 * time.Millisecond}
	if addrs, _, err := r.Lookup(context.Background(), "api.example"); err != nil || len(addrs) != 1 {
		t.Fatalf("Lookup = %v, %v", addrs, err)
	}
}

func TestResolveStrictAndLogical(t *testing.T) {
	s := newServer(t)
	s.set("a.example.", "10.0.0.2", "10.0.0.1")
	s.set("b.example.", "10.0.0.1", "10.0.0.3")
	r := &Resolver{Servers: []string{s.addr}, Timeout: time.Second}
	ctx := context.Background()

	strict := &Spec{Name: "c", Type: StrictDNS, Endpoints: []string{"a.example:80", "b.example:80"}}
	hosts, next, err := Resolve(ctx, strict, r)
	if err != nil || !slices.Equal(hosts, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}) || next != DefaultRefreshRate {
		t.Fatalf("strict_dns: %v next %v err %v", hosts, next, err)
	}
	logical := &Spec{Name: "c", Type: LogicalDNS, Endpoints: []string{"a.example:8080"}, RespectTTL: true}
	hosts, next, err = Resolve(ctx, logical, r)
	if err != nil || !slices.Equal(hosts, []string{"10.0.0.2:8080"}) || next != 30*time.Second {
		t.Fatalf("logical_dns: %v next %v err %v (want first address, TTL 30s)", hosts, next, err)
	}
	if err := (&Spec{Name: "c", Type: LogicalDNS, Endpoints: []string{"a:1", "b:1"}}).Validate(); err == nil {
		t.Fatal("logical_dns with two endpoints accepted")
	}
}

func TestWatchFollowsChangesWithoutReload(t *testing.T) {
	s := newServer(t)
	s.set("api.example.", "10.0.0.1")
	r := &Resolver{Servers: []string{s.addr}, Timeout: time.Second}
	spec := &Spec{Name: "c", Type: StrictDNS, Endpoints: []string{"api.example:443"}, RefreshRate: 5 * time.Millisecond}
	updates := make(chan []string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Watch(ctx, spec, r, func(h []string) { updates <- h }, nil) }()
	defer func() { cancel(); <-done }()

	next := func(want ...string) {
		t.Helper()
		select {
		case h := <-updates:
			if !slices.Equal(h, want) {
				t.Fatalf("update %v, want %v", h, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no update to %v", want)
		}
	}
	next("10.0.0.1:443")
	s.set("api.example.", "10.0.0.1", "10.0.0.9")
	next("10.0.0.1:443", "10.0.0.9:443")
	// A failing resolution keeps the hosts: the next update is the next real change.
	s.mu.Lock()
	delete(s.records, "api.example.")
	s.mu.Unlock()
	before := s.queries.Load()
	for s.queries.Load() < before+4 {
		select {
		case h := <-updates:
			t.Fatalf("update %v while resolution fails", h)
		case <-time.After(time.Millisecond):
		}
	}
	s.set("api.example.", "10.0.0.9")
	next("10.0.0.9:443")
}

func TestReadResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# c\nsearch x\nnameserver 192.0.2.1\nnameserver 2001:db8::53\noptions ndots:2\n"), 0o600)
	got, err := ReadResolvConf(p)
	if err != nil || !slices.Equal(got, []string{"192.0.2.1:53", "[2001:db8::53]:53"}) {
		t.Fatalf("ReadResolvConf = %v, %v", got, err)
	}
}

func TestWatchFromReportsOnlyChanges(t *testing.T) {
	s := newServer(t)
	s.set("api.example.", "10.0.0.1")
	r := &Resolver{Servers: []string{s.addr}, Timeout: time.Second}
	spec := &Spec{Name: "c", Type: LogicalDNS, Endpoints: []string{"api.example:80"}, RefreshRate: 5 * time.Millisecond}
	hosts, next, err := Resolve(context.Background(), spec, r)
	if err != nil || !slices.Equal(hosts, []string{"10.0.0.1:80"}) {
		t.Fatalf("resolve: %v %v", hosts, err)
	}
	updates := make(chan []string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- WatchFrom(ctx, spec, r, hosts, next, func(h []string) { updates <- h }, nil) }()
	defer func() { cancel(); <-done }()
	// Unchanged answers are not reported: wait for several queries.
	before := s.queries.Load()
	for s.queries.Load() < before+4 {
		select {
		case h := <-updates:
			t.Fatalf("update %v without a change", h)
		case <-time.After(time.Millisecond):
		}
	}
	s.set("api.example.", "10.0.0.7", "10.0.0.8")
	select {
	case h := <-updates:
		if !slices.Equal(h, []string{"10.0.0.7:80"}) {
			t.Fatalf("update %v, want the first address only", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update after the change")
	}
}
