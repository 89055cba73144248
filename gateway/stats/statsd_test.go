package stats

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadBuffer(1 << 20)
	return c
}

// receive reads datagrams until one arrives that contains want, and returns
// all lines read.
func receive(t *testing.T, c *net.UDPConn, want string) []string {
	t.Helper()
	var lines []string
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %d lines)", want, err, len(lines))
		}
		if n > MaxDatagram {
			t.Fatalf("datagram of %d bytes", n)
		}
		lines = append(lines, strings.Split(string(buf[:n]), "\n")...)
		if strings.Contains(string(buf[:n]), want) {
			return lines
		}
	}
}

func TestStatsdSendsDeltasGaugesAndQuantiles(t *testing.T) {
	srv := listenUDP(t)
	r := filledRegion(t)
	sd, err := NewStatsd(srv.LocalAddr().String(), "sluice", 0, r.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if err := sd.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := receive(t, srv, "sluice.http.ingress.downstream_rq_5xx:2|c")
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"sluice.cluster.backend.upstream_rq_total:7|c",
		"sluice.cluster.backend.upstream_cx_active:2|g",
		"sluice.cluster.backend.upstream_rq_time.count:5|c",
		"sluice.cluster.backend.upstream_rq_time.p50:",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("first flush lacks %q", want)
		}
	}
	if strings.Contains(all, "upstream_rq_timeout") {
		t.Error("zero counter sent")
	}
	// The second flush sends only what changed since: a delta of 1.
	r.Slab(0).Cluster("backend").UpstreamRqTotal.Inc()
	go sd.Run(cancelled(t))
	lines = receive(t, srv, "sluice.cluster.backend.upstream_rq_total:")
	for _, l := range lines {
		if strings.HasPrefix(l, "sluice.cluster.backend.upstream_rq_total:") && l != "sluice.cluster.backend.upstream_rq_total:1|c" {
			t.Fatalf("second flush sent %q, want a delta of 1", l)
		}
	}
}

// cancelled returns a context that is already done: Run flushes once and
// returns.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestStatsdBatchesIntoSmallDatagrams(t *testing.T) {
	srv := listenUDP(t)
	var defs []Def
	for i := 0; i < 60; i++ {
		defs = append(defs, ClusterDefs("cluster-with-a-rather-long-name-"+string(rune('a'+i%26))+string(rune('a'+i/26)))...)
	}
	s, err := NewSchema(defs)
	if err != nil {
		t.Fatal(err)
	}
	r := makeRegion(t, s, 1)
	for _, d := range s.Defs() {
		if d.Kind == KindCounter {
			r.Slab(0).Counter(d.Name).Inc()
		}
	}
	sd, err := NewStatsd(srv.LocalAddr().String(), "", time.Second, r.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if err := sd.Flush(); err != nil {
		t.Fatal(err)
	}
	last := s.Defs()[0].Name // counters come first in slot order; find the last counter
	for _, d := range s.Defs() {
		if d.Kind == KindCounter && d.Name > last {
			last = d.Name
		}
	}
	lines := receive(t, srv, last+":1|c") // receive checks the size bound
	if len(lines) < 100 {
		t.Fatalf("only %d lines", len(lines))
	}
}

// A statsd address whose name does not resolve yet (DNS not up when sluice
// starts) used to disable the sink until the next restart. The sink now
// tries again at every flush and, once it can send, sends the whole delta.
func TestStatsdRetriesANameThatDidNotResolve(t *testing.T) {
	srv := listenUDP(t)
	r := filledRegion(t)
	sd, err := NewStatsd("statsd.invalid:8125", "sluice", 0, r.Snapshot)
	if err != nil {
		t.Fatalf("NewStatsd with a name that does not resolve: %v", err)
	}
	defer sd.Close()
	if err := sd.Connect(); err == nil {
		t.Fatal("Connect to statsd.invalid succeeded")
	}
	if err := sd.Flush(); err == nil {
		t.Fatal("Flush without a server succeeded")
	}
	// The name resolves now.
	sd.dial = func() (net.Conn, error) { return net.Dial("udp", srv.LocalAddr().String()) }
	if err := sd.Flush(); err != nil {
		t.Fatal(err)
	}
	receive(t, srv, "sluice.cluster.backend.upstream_rq_total:7|c")
	if _, err := NewStatsd("no-port", "sluice", 0, r.Snapshot); err == nil {
		t.Fatal("NewStatsd accepted an address without a port")
	}
}

// TestStatsdPrimedSinkSendsOnlyWhatFollows checks that a sink primed with
// what another sink sent (Prime, Sent) sends neither the counters nor the
// histogram values of before again: only the request recorded since.
func TestStatsdPrimedSinkSendsOnlyWhatFollows(t *testing.T) {
	srv := listenUDP(t)
	r := filledRegion(t)
	first, err := NewStatsd(srv.LocalAddr().String(), "sluice", 0, r.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Flush(); err != nil {
		t.Fatal(err)
	}
	receive(t, srv, "sluice.http.ingress.downstream_rq_5xx:2|c")
	c := r.Slab(0).Cluster("backend")
	c.UpstreamRqTotal.Inc()
	c.UpstreamRqTime.Record(7 * time.Millisecond)
	next, err := NewStatsd(srv.LocalAddr().String(), "sluice", 0, r.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	next.Prime(first.Sent())
	if err := next.Flush(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(receive(t, srv, "sluice.cluster.backend.upstream_rq_total:"), "\n")
	for _, want := range []string{"sluice.cluster.backend.upstream_rq_total:1|c", "sluice.cluster.backend.upstream_rq_time.count:1|c",
		"sluice.cluster.backend.upstream_rq_time.p99:7.167|g"} {
		if !strings.Contains(all, want) {
			t.Errorf("primed sink's flush lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "downstream_rq_5xx") {
		t.Errorf("primed sink sent a counter again:\n%s", all)
	}
}
