package supervisor_test

import (
	"net"
	"net/netip"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a real DNS server on 127.0.0.1 UDP port 0 answering A
// queries from a table the test changes.
type dnsServer struct {
	addr    string
	mu      sync.Mutex
	records map[string][]netip.Addr // guarded by mu; names with the final dot
}

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &dnsServer{addr: pc.LocalAddr().String(), records: map[string][]netip.Addr{}}
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

func (s *dnsServer) set(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[name] = nil
	for _, a := range addrs {
		s.records[name] = append(s.records[name], netip.MustParseAddr(a))
	}
}

func (s *dnsServer) answer(q []byte) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	qq := m.Questions[0]
	s.mu.Lock()
	addrs, ok := s.records[qq.Name.String()]
	s.mu.Unlock()
	m.Header.Response = true
	if !ok {
		m.Header.RCode = dnsmessage.RCodeNameError
	}
	for _, a := range addrs {
		if a.Is4() && qq.Type == dnsmessage.TypeA {
			h := dnsmessage.ResourceHeader{Name: qq.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 30}
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		}
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

// fakeHostsOnOnePort starts fake hosts on 127.0.0.1 and 127.0.0.2 with
// the same port, as two addresses of one DNS name.
func fakeHostsOnOnePort(t *testing.T) (a, b *fakeHost, port string) {
	t.Helper()
	for range 20 {
		lb, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatalf("listen on 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux): %v", err)
		}
		_, port, _ = net.SplitHostPort(lb.Addr().String())
		la, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			lb.Close()
			continue // the port is taken on 127.0.0.1; try another
		}
		return serveFakeHost(t, la), serveFakeHost(t, lb), port
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil, ""
}

func TestStrictDNSClusterFollowsNewAddressesWithoutReload(t *testing.T) {
	t.Parallel()
	a, b, port := fakeHostsOnOnePort(t)
	d := newDNSServer(t)
	d.set("api.test.", "127.0.0.1")
	s := start(t, resilienceConfig(controlPath(t), []string{"api.test:" + port}, `
  type = "strict_dns"
  dns_refresh_rate = "20ms"
  dns_resolvers = ["`+d.addr+`"]
`, ""))
	addr := s.listenAddr(t, "public")
	s.wait(t, "DNS cluster resolved", map[string]any{"cluster": "backend"}, nil)
	s.wait(t, "ready", nil, nil)
	for range 6 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+a.addr {
			t.Fatalf("GET / = %d %q, want 200 from %s", code, body, a.addr)
		}
	}
	d.set("api.test.", "127.0.0.2")
	s.wait(t, "DNS cluster hosts changed", map[string]any{"cluster": "backend"}, nil)
	// Both workers swap their host list (no reload: still generation 1).
	for slot := range 2 {
		s.wait(t, "cluster hosts updated", map[string]any{"cluster": "backend", "slot": slot, "generation": 1}, nil)
	}
	before := a.served.Load()
	for range 6 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+b.addr {
			t.Fatalf("GET / after the DNS change = %d %q, want 200 from %s", code, body, b.addr)
		}
	}
	if a.served.Load() != before {
		t.Fatal("the address DNS no longer gives still got requests")
	}
	// strict_dns takes every address.
	d.set("api.test.", "127.0.0.1", "127.0.0.2")
	s.wait(t, "DNS cluster hosts changed", map[string]any{"cluster": "backend"}, func(e entry) bool {
		h, _ := e["hosts"].([]any)
		return len(h) == 2
	})
	for slot := range 2 {
		s.wait(t, "cluster hosts updated", map[string]any{"cluster": "backend", "slot": slot}, func(e entry) bool {
			h, _ := e["hosts"].([]any)
			return len(h) == 2
		})
	}
	seen := map[string]bool{}
	for range 8 {
		_, body := get(t, addr, "/")
		seen[body] = true
	}
	if !seen["from "+a.addr] || !seen["from "+b.addr] {
		t.Fatalf("responses came from %v; want both addresses", seen)
	}
}

func TestLogicalDNSClusterUsesTheFirstAddress(t *testing.T) {
	t.Parallel()
	a, b, port := fakeHostsOnOnePort(t)
	d := newDNSServer(t)
	d.set("api.test.", "127.0.0.2", "127.0.0.1")
	s := start(t, resilienceConfig(controlPath(t), []string{"api.test:" + port}, `
  type = "logical_dns"
  dns_refresh_rate = "20ms"
  dns_resolvers = ["`+d.addr+`"]
`, ""))
	addr := s.listenAddr(t, "public")
	s.wait(t, "ready", nil, nil)
	for range 6 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+b.addr {
			t.Fatalf("GET / = %d %q, want 200 from the first address %s", code, body, b.addr)
		}
	}
	if a.served.Load() != 0 {
		t.Fatal("logical_dns used an address other than the first")
	}
}
