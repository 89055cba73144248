package cluster

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/lb"
)

func originalDstCluster(t *testing.T, extra string) *Cluster {
	t.Helper()
	return testManager(t, "odst.toml", `
[[cluster]]
name = "odst"
type = "original_dst"
`+extra).Get("odst")
}

func TestOriginalDstPicksTheOriginalDestination(t *testing.T) {
	c := originalDstCluster(t, "")
	a := netip.MustParseAddrPort("10.1.2.3:8080")
	h1, err := c.Pick(&lb.Request{OriginalDst: a})
	if err != nil || h1.Address != "10.1.2.3:8080" {
		t.Fatalf("pick: %v, %v; want host 10.1.2.3:8080", h1, err)
	}
	h2, _ := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort("[::ffff:10.1.2.3]:8080")})
	if h2 != h1 {
		t.Fatalf("second pick of the same destination made a new host %v", h2)
	}
	h3, _ := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort("[2001:db8::1]:443")})
	if h3 == nil || h3.Address != "[2001:db8::1]:443" {
		t.Fatalf("IPv6 destination: host %v", h3)
	}
	for name, r := range map[string]*lb.Request{"nil request": nil, "no original destination": {}} {
		if h, err := c.Pick(r); !errors.Is(err, ErrNoHealthyUpstream) {
			t.Fatalf("%s: %v, %v; want ErrNoHealthyUpstream", name, h, err)
		}
	}
	// Without use_http_header the header is ignored.
	hdr := &httpfilter.Headers{}
	hdr.Add(OriginalDstHeader, "10.9.9.9:1")
	if h, _ := c.Pick(&lb.Request{OriginalDst: a, Header: hdr}); h != h1 {
		t.Fatalf("header honoured without use_http_header: %v", h)
	}
}

func TestOriginalDstUseHTTPHeader(t *testing.T) {
	c := originalDstCluster(t, "use_http_header = true\n")
	conn := netip.MustParseAddrPort("10.1.2.3:8080")
	hdr := &httpfilter.Headers{}
	hdr.Add(OriginalDstHeader, "10.9.9.9:81")
	if h, err := c.Pick(&lb.Request{OriginalDst: conn, Header: hdr}); err != nil || h.Address != "10.9.9.9:81" {
		t.Fatalf("with the header: %v, %v; want 10.9.9.9:81", h, err)
	}
	if h, err := c.Pick(&lb.Request{OriginalDst: conn, Header: &httpfilter.Headers{}}); err != nil || h.Address != "10.1.2.3:8080" {
		t.Fatalf("without the header: %v, %v; want the connection's 10.1.2.3:8080", h, err)
	}
	bad := &httpfilter.Headers{}
	bad.Add(OriginalDstHeader, "upstream.example:80")
	if h, err := c.Pick(&lb.Request{OriginalDst: conn, Header: bad}); !errors.Is(err, ErrNoHealthyUpstream) {
		t.Fatalf("invalid header: %v, %v; want ErrNoHealthyUpstream", h, err)
	}
}

func TestOriginalDstCleansUpIdleHosts(t *testing.T) {
	c := originalDstCluster(t, `cleanup_interval = "20ms"`+"\n")
	idle := netip.MustParseAddrPort("10.0.0.1:80")
	busy := netip.MustParseAddrPort("10.0.0.2:80")
	if _, err := c.Pick(&lb.Request{OriginalDst: idle}); err != nil {
		t.Fatal(err)
	}
	hb, err := c.Pick(&lb.Request{OriginalDst: busy})
	if err != nil {
		t.Fatal(err)
	}
	hb.Begin() // in flight: kept however long it lasts
	if n := c.odst.hostCount(); n != 2 {
		t.Fatalf("%d hosts, want 2", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.odst.hostCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("idle host not removed: %d hosts", c.odst.hostCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if h, _ := c.Pick(&lb.Request{OriginalDst: busy}); h != hb {
		t.Fatal("the host with a request in flight was removed")
	}
	hb.End()
	for c.odst.hostCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("finished host not removed: %d hosts", c.odst.hostCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.Stats.MembershipTotal.Value(); got != 0 {
		t.Fatalf("membership_total %d, want 0", got)
	}
}
