package dns

import (
	"context"
	"errors"
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

// server is a real DNS server on 127.0.0.1 UDP port 0 answering from a
// table it lets the test change.
type server struct {
	addr    string
	queries atomic.Int64

	mu      sync.Mutex
	records map[string][]netip.Addr // guarded by mu; name with final dot
	ttl     uint32
}

func newServer(t *testing.T) *server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &server{addr: pc.LocalAddr().String(), records: map[string][]netip.Addr{}, ttl: 30}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := s.answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return s
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

func (s *server) answer(q []byte) []byte {
	s.queries.Add(1)
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
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
