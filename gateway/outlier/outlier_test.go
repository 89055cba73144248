package outlier

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
)

var t0 = time.Unix(1_800_000_000, 0)

func u32(v uint32) *uint32 { return &v }

type fixture struct {
	p   *Policy
	c   Cluster
	rec *Recorder
	det *Detector
	ev  []Event
}

func newFixture(t *testing.T, cfg Config, hosts int) *fixture {
	t.Helper()
	r, err := hoststate.New(hoststate.Options{Slots: 64, Workers: 1, ArenaWords: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	p, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{p: p}
	sup, _ := r.AddCluster("backend", -1)
	worker, _ := r.AddCluster("backend", 0)
	f.c = Cluster{Name: "backend", Policy: p, Record: sup}
	for i := 0; i < hosts; i++ {
		a := fmt.Sprintf("10.0.0.%d:80", i)
		h, err := r.AddHost("backend", a, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.c.Addresses = append(f.c.Addresses, a)
		f.c.Hosts = append(f.c.Hosts, h)
	}
	f.rec = NewRecorder(p, worker, hosts)
	f.det = NewDetector(func(e Event) { f.ev = append(f.ev, e) })
	f.det.Set([]Cluster{f.c}, t0)
	return f
}

func (f *fixture) ejected(i int) bool {
	return f.c.Hosts[i].Flags()&hoststate.FlagOutlierEjected != 0
}

func TestResolveDefaults(t *testing.T) {
	p, err := (&Config{}).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{
		Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent: 10, EnforcingConsecutive5xx: 100, EnforcingConsecutiveLocal: 100,
		EnforcingSuccessRate: 100, EnforcingLocalOriginSuccess: 100,
		SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1900,
		FailurePercentageThreshold: 85, FailurePercentageMinimumHosts: 5, FailurePercentageRequestVolume: 50,
	}
	if *p != want {
		t.Fatalf("defaults\n got %+v\nwant %+v", *p, want)
	}
	for name, c := range map[string]Config{
		"percent over 100": {MaxEjectionPercent: u32(101)},
		"max below base":   {BaseEjectionTime: time.Minute, MaxEjectionTime: time.Second},
	} {
		if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "outlier: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestConsecutive5xxEjectsAndBacksOff(t *testing.T) {
	f := newFixture(t, Config{}, 10)
	h := f.c.Hosts[0]
	for i := 0; i < 4; i++ {
		if why := f.rec.Status(h, 500, t0); why != 0 {
			t.Fatalf("ejected after %d 5xx", i+1)
		}
	}
	f.rec.Status(h, 200, t0) // a success resets the run
	for i := 0; i < 4; i++ {
		f.rec.Status(h, 500, t0)
	}
	if f.ejected(0) {
		t.Fatal("ejected although a success broke the run")
	}
	if why := f.rec.Status(h, 500, t0); why != Consecutive5xx || !f.ejected(0) {
		t.Fatalf("5th consecutive 5xx: reason %v, ejected %v", why, f.ejected(0))
	}
	if !h.EjectedUntil().Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("ejected until %v, want +30s", h.EjectedUntil())
	}
	f.det.Tick(t0.Add(20 * time.Second))
	if !f.ejected(0) {
		t.Fatal("back before base_ejection_time")
	}
	f.det.Tick(t0.Add(30 * time.Second))
	if f.ejected(0) || len(f.ev) != 1 || f.ev[0].Ejected || f.ev[0].Address != "10.0.0.0:80" {
		t.Fatalf("not back after 30s: events %+v", f.ev)
	}
	// Second ejection: 2 × base.
	t1 := t0.Add(31 * time.Second)
	for i := 0; i < 5; i++ {
		f.rec.Status(h, 503, t1)
	}
	if !f.ejected(0) || !h.EjectedUntil().Equal(t1.Add(60*time.Second)) {
		t.Fatalf("second ejection until %v, want +60s", h.EjectedUntil())
	}
}

func TestConsecutiveGatewayFailure(t *testing.T) {
	f := newFixture(t, Config{Consecutive5xx: u32(100), EnforcingConsecutiveGateway: u32(100)}, 10)
	h := f.c.Hosts[1]
	for i := 0; i < 4; i++ {
		f.rec.Status(h, 502, t0)
	}
	f.rec.Status(h, 500, t0) // a non-gateway 5xx resets the gateway run
	for i := 0; i < 4; i++ {
		f.rec.Status(h, 504, t0)
	}
	if f.ejected(1) {
		t.Fatal("ejected although a 500 broke the gateway-failure run")
	}
	if why := f.rec.Status(h, 503, t0); why != ConsecutiveGatewayFailure {
		t.Fatalf("reason %v, want consecutive_gateway_failure", why)
	}
}

func TestGatewayFailureNotEnforcedByDefault(t *testing.T) {
	f := newFixture(t, Config{Consecutive5xx: u32(100)}, 10)
	for i := 0; i < 10; i++ {
		f.rec.Status(f.c.Hosts[0], 503, t0)
	}
	if f.ejected(0) {
		t.Fatal("enforcing_consecutive_gateway_failure defaults to 0 but the host was ejected")
	}
}

func TestLocalOriginFailures(t *testing.T) {
	t.Run("merged", func(t *testing.T) {
		f := newFixture(t, Config{}, 10)
		for i := 0; i < 5; i++ {
			f.rec.LocalOrigin(f.c.Hosts[0], true, t0)
		}
		if !f.ejected(0) {
			t.Fatal("5 connect failures (as 503s) did not eject")
		}
	})
	t.Run("split", func(t *testing.T) {
		f := newFixture(t, Config{SplitExternalLocalOriginErrors: true, Consecutive5xx: u32(100)}, 10)
		var why Reason
		for i := 0; i < 5; i++ {
			why = f.rec.LocalOrigin(f.c.Hosts[0], true, t0)
		}
		if why != ConsecutiveLocalOriginFailure {
			t.Fatalf("reason %v, want consecutive_local_origin_failure", why)
		}
		// A successful connection resets the local-origin run.
		for i := 0; i < 4; i++ {
			f.rec.LocalOrigin(f.c.Hosts[1], true, t0)
		}
		f.rec.LocalOrigin(f.c.Hosts[1], false, t0)
		f.rec.LocalOrigin(f.c.Hosts[1], true, t0)
		if f.ejected(1) {
			t.Fatal("ejected although a successful connect broke the run")
		}
	})
}

func TestMaxEjectionPercent(t *testing.T) {
	f := newFixture(t, Config{}, 10)
	n := 0
	for i := range f.c.Hosts {
		for j := 0; j < 5; j++ {
			if f.rec.Status(f.c.Hosts[i], 500, t0) != 0 {
				n++
			}
		}
	}
	if n != 1 || f.c.Record.Ejected() != 1 {
		t.Fatalf("%d hosts ejected (record says %d), want 1 of 10 at 10 %%", n, f.c.Record.Ejected())
	}
}

func TestSuccessRate(t *testing.T) {
	f := newFixture(t, Config{}, 6)
	// Hosts 0..4: 100 requests each; host 1 succeeds 50 %; host 5 has too
	// few requests to count.
	for i := 0; i < 5; i++ {
		for j := 0; j < 100; j++ {
			code := 200
			if i == 1 && j%2 == 0 {
				code = 500
			}
			f.rec.Status(f.c.Hosts[i], code, t0)
			f.rec.Status(f.c.Hosts[i], 200, t0) // keep consecutive runs short
		}
	}
	for j := 0; j < 10; j++ {
		f.rec.Status(f.c.Hosts[5], 500, t0)
		f.rec.Status(f.c.Hosts[5], 200, t0)
	}
	f.det.Tick(t0.Add(10 * time.Second))
	// Rates: 100,75,100,100,100 → mean 95, stdev 10 → threshold 76: host 1
	// (75 %) is out.
	for i := range f.c.Hosts {
		if f.ejected(i) != (i == 1) {
			t.Fatalf("host %d ejected = %v; events %+v", i, f.ejected(i), f.ev)
		}
	}
	if len(f.ev) != 1 || f.ev[0].Reason != SuccessRate {
		t.Fatalf("events %+v", f.ev)
	}
	// The interval's counters were consumed: the next interval starts empty.
	f.det.Tick(t0.Add(20 * time.Second))
	if len(f.ev) != 1 {
		t.Fatalf("second interval acted on old counts: %+v", f.ev)
	}
}

func TestSuccessRateNeedsMinimumHosts(t *testing.T) {
	f := newFixture(t, Config{}, 4)
	for i := 0; i < 4; i++ {
		for j := 0; j < 100; j++ {
			code := 200
			if i == 0 && j%4 != 0 {
				code = 500
			}
			f.rec.Status(f.c.Hosts[i], code, t0)
		}
	}
	f.det.Tick(t0.Add(10 * time.Second))
	if len(f.ev) != 0 {
		t.Fatalf("ejections with 4 hosts (success_rate_minimum_hosts 5): %+v", f.ev)
	}
}

func TestFailurePercentage(t *testing.T) {
	f := newFixture(t, Config{EnforcingFailurePercentage: u32(100), Consecutive5xx: u32(1000), EnforcingSuccessRate: u32(0)}, 5)
	for i := 0; i < 5; i++ {
		for j := 0; j < 50; j++ {
			code := 200
			if i == 3 && j%10 != 0 { // 90 % failures
				code = 500
			}
			f.rec.Status(f.c.Hosts[i], code, t0)
		}
	}
	f.det.Tick(t0.Add(10 * time.Second))
	if !f.ejected(3) || len(f.ev) != 1 || f.ev[0].Reason != FailurePercentage {
		t.Fatalf("events %+v", f.ev)
	}
}

func TestDetectorIntervalTiming(t *testing.T) {
	f := newFixture(t, Config{Interval: 5 * time.Second}, 1)
	if next := f.det.Tick(t0.Add(time.Second)); !next.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("next interval end %v, want t0+5s", next)
	}
	if next := f.det.Tick(t0.Add(5 * time.Second)); !next.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("next interval end %v, want t0+10s", next)
	}
	// A reload that keeps the cluster keeps its timing.
	f.det.Set([]Cluster{f.c}, t0.Add(7*time.Second))
	if next := f.det.Tick(t0.Add(7 * time.Second)); !next.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("after Set: next %v, want t0+10s", next)
	}
}

func BenchmarkRecorderStatus(b *testing.B) {
	r, _ := hoststate.New(hoststate.Options{Slots: 8, Workers: 1, ArenaWords: 1})
	defer r.Close()
	p, _ := (&Config{}).Resolve()
	c, _ := r.AddCluster("c", 0)
	h, _ := r.AddHost("c", "a:1", 0)
	rec := NewRecorder(p, c, 1)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		rec.Status(h, 200, now)
	}
}

// TestRemovedEjectedHostGivesBackItsEjection checks that a host that
// leaves the cluster (a DNS answer no longer has it) while ejected gives
// its unit of max_ejection_percent back: otherwise the cluster could never
// eject another host.
func TestRemovedEjectedHostGivesBackItsEjection(t *testing.T) {
	f := newFixture(t, Config{}, 10)
	for range 5 {
		f.rec.Status(f.c.Hosts[0], 500, t0)
	}
	if !f.ejected(0) || f.c.Record.Ejected() != 1 {
		t.Fatalf("host 0 not ejected (record says %d)", f.c.Record.Ejected())
	}
	// The set loses host 0.
	next := f.c
	next.Addresses, next.Hosts = f.c.Addresses[1:], f.c.Hosts[1:]
	f.det.Set([]Cluster{next}, t0)
	f.rec.SetHosts(len(next.Hosts))
	if n := f.c.Record.Ejected(); n != 0 {
		t.Fatalf("the cluster counts %d ejected hosts after the ejected one left, want 0", n)
	}
	for range 5 {
		f.rec.Status(f.c.Hosts[1], 500, t0)
	}
	if !f.ejected(1) {
		t.Fatal("a failing host was not ejected: the departed host still holds the ejection budget")
	}
}
