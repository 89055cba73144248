package health

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// deadline bounds every wait for a state change.
const deadline = 10 * time.Second

type change struct {
	addr    string
	healthy bool
}

// start runs a checker over one cluster and returns the region and a
// channel of health changes.
func start(t *testing.T, cfg *Config, addrs ...string) (*hoststate.Region, <-chan change, *Checker) {
	t.Helper()
	r, err := hoststate.New(hoststate.Options{Slots: 64, Workers: 1, ArenaWords: 1})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan change, 64)
	c, err := New([]Cluster{{Name: "backend", Addresses: addrs, Config: cfg}}, r, Options{
		OnChange: func(_, a string, ok bool) { ch <- change{a, ok} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return r, ch, c
}

func wait(t *testing.T, ch <-chan change, want bool) {
	t.Helper()
	select {
	case c := <-ch:
		if c.healthy != want {
			t.Fatalf("host %s became healthy=%v, want %v", c.addr, c.healthy, want)
		}
	case <-time.After(deadline):
		t.Fatalf("no change to healthy=%v within %v", want, deadline)
	}
}

func fast(typ string) *Config {
	return &Config{Type: typ, Interval: 5 * time.Millisecond, NoTrafficInterval: 5 * time.Millisecond,
		Timeout: time.Second, UnhealthyThreshold: 2, HealthyThreshold: 3}
}

func TestHTTPFlappingHost(t *testing.T) {
	var mode atomic.Int32 // 0 ok, 1 503, 2 immediate fail, 3 no answer
	var fails, immediates, drops atomic.Int32
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Host != "backend" {
			w.WriteHeader(404)
			return
		}
		switch mode.Load() {
		case 1:
			fails.Add(1)
			w.WriteHeader(503)
		case 2:
			immediates.Add(1)
			w.Header().Set("x-envoy-immediate-health-check-fail", "true")
		case 3:
			drops.Add(1)
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
		}
	}))
	cfg := fast(TypeHTTP)
	cfg.HTTP.Path = "/healthz"
	r, ch, c := start(t, cfg, up.Addr)
	h := r.Host("backend", up.Addr)

	// Hosts start unhealthy; one pass suffices the first time.
	wait(t, ch, true)
	if !h.Healthy() || h.Flags()&hoststate.FlagPendingActiveHC != 0 {
		t.Fatalf("flags %b after first pass", h.Flags())
	}
	if !h.HealthySince().IsZero() {
		t.Fatal("a first pass started slow start (HealthySince set)")
	}
	select {
	case <-c.Warm():
	case <-time.After(deadline):
		t.Fatal("Warm not closed after the first round")
	}

	// A status outside expected_statuses fails the host at once, as in
	// Envoy: unhealthy_threshold counts network failures only.
	mode.Store(1)
	wait(t, ch, false)
	if n := fails.Load(); n != 1 {
		t.Fatalf("failed after %d 503s, want 1 (an unexpected status ignores unhealthy_threshold)", n)
	}

	// Back: healthy_threshold (3) passes in a row.
	checks := h.Checks()
	mode.Store(0)
	wait(t, ch, true)
	if n := h.Checks() - checks; n < 3 {
		t.Fatalf("healthy again after %d checks, healthy_threshold is 3", n)
	}
	if since := h.HealthySince(); since.IsZero() || time.Since(since) > deadline {
		t.Fatalf("HealthySince = %v after the host came back, want just now (slow start)", since)
	}

	// No answer (the connection closes): unhealthy_threshold (2) in a row.
	mode.Store(3)
	wait(t, ch, false)
	if n := drops.Load(); n < 2 {
		t.Fatalf("failed after %d unanswered checks, unhealthy_threshold is 2", n)
	}
	mode.Store(0)
	wait(t, ch, true)

	// The immediate-fail header fails the host at the first answer.
	mode.Store(2)
	wait(t, ch, false)
	if n := immediates.Load(); n != 1 {
		t.Fatalf("failed after %d immediate-fail answers, want 1", n)
	}
	if h.Flags()&hoststate.FlagImmediateHCFail == 0 {
		t.Fatalf("flags %b lack FlagImmediateHCFail", h.Flags())
	}
	mode.Store(0)
	wait(t, ch, true)
	if h.Flags() != 0 {
		t.Fatalf("flags %b after recovery, want 0", h.Flags())
	}
}

func TestHTTPExpectedStatusesAndFailedFirstCheck(t *testing.T) {
	var code atomic.Int32
	code.Store(500)
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	cfg := fast(TypeHTTP)
	cfg.HTTP.Path = "/"
	cfg.HTTP.ExpectedStatuses = [][2]int{{200, 300}}
	r, ch, c := start(t, cfg, up.Addr)
	<-c.Warm()
	h := r.Host("backend", up.Addr)
	if h.Healthy() || h.Flags()&hoststate.FlagPendingActiveHC != 0 {
		t.Fatalf("after a failed first check flags %b: want failed, not pending", h.Flags())
	}
	code.Store(204) // inside [200, 300)
	wait(t, ch, true)
}

func TestTCPHostStopsAnswering(t *testing.T) {
	var mute atomic.Bool
	up := testutil.RawUpstream(t, func(c net.Conn) {
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil || !bytes.Equal(buf, []byte("ping")) {
			return
		}
		if mute.Load() {
			c.Read(buf) // hold the connection without answering
			return
		}
		c.Write([]byte("..pong.."))
	})
	cfg := fast(TypeTCP)
	cfg.Timeout = 50 * time.Millisecond
	cfg.TCP.Send = "70696e67"              // "ping"
	cfg.TCP.Receive = []string{"706f6e67"} // "pong"
	_, ch, _ := start(t, cfg, up.Addr)
	wait(t, ch, true)
	mute.Store(true)
	wait(t, ch, false)
	mute.Store(false)
	wait(t, ch, true)
}

func TestTCPConnectRefused(t *testing.T) {
	cfg := fast(TypeTCP)
	addr := testutil.DeadAddr(t)
	r, _, c := start(t, cfg, addr)
	<-c.Warm()
	if r.Host("backend", addr).Healthy() {
		t.Fatal("host refusing connections is healthy")
	}
}

func TestGRPCHealthService(t *testing.T) {
	ln := testutil.ListenTCP(t)
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	cfg := fast(TypeGRPC)
	cfg.GRPC.ServiceName = "echo"
	// NOT_SERVING is an answer, not a network failure: it fails the host
	// at once, whatever unhealthy_threshold.
	cfg.UnhealthyThreshold = 1 << 20
	_, ch, _ := start(t, cfg, ln.Addr().String())
	wait(t, ch, true)
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_NOT_SERVING)
	wait(t, ch, false)
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	wait(t, ch, true)
}

func TestStateSurvivesNewChecker(t *testing.T) {
	// A reload builds a new checker on the same region: a host already
	// healthy stays healthy instead of starting over as pending.
	r, err := hoststate.New(hoststate.Options{Slots: 16, Workers: 1, ArenaWords: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h, _ := r.AddHost("backend", "127.0.0.1:1", 0)
	cfg := fast(TypeTCP)
	if _, err := New([]Cluster{{Name: "backend", Addresses: []string{"127.0.0.1:1"}, Config: cfg}}, r, Options{}); err != nil {
		t.Fatal(err)
	}
	if !h.Healthy() {
		t.Fatalf("known host reset to flags %b by a new checker", h.Flags())
	}
}

func TestNextInterval(t *testing.T) {
	cfg := &Config{Interval: time.Second, NoTrafficInterval: time.Minute, IntervalJitter: 100 * time.Millisecond, IntervalJitterPercent: 10}
	for i := 0; i < 100; i++ {
		if d := nextInterval(cfg, true); d < time.Second || d >= 1200*time.Millisecond {
			t.Fatalf("with traffic: %v, want [1s, 1.2s)", d)
		}
		if d := nextInterval(cfg, false); d < time.Minute || d >= time.Minute+200*time.Millisecond {
			t.Fatalf("without traffic: %v, want [60s, 60.2s)", d)
		}
	}
	cfg.NoTrafficInterval = 0
	if d := nextInterval(&Config{Interval: time.Second}, false); d != DefaultNoTrafficInterval {
		t.Fatalf("default no_traffic_interval %v", d)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, c := range map[string]Config{
		"type":      {Type: "udp", Interval: 1, Timeout: 1, UnhealthyThreshold: 1, HealthyThreshold: 1},
		"path":      {Type: TypeHTTP, Interval: 1, Timeout: 1, UnhealthyThreshold: 1, HealthyThreshold: 1},
		"interval":  {Type: TypeTCP, Timeout: 1, UnhealthyThreshold: 1, HealthyThreshold: 1},
		"threshold": {Type: TypeTCP, Interval: 1, Timeout: 1},
		"hex":       {Type: TypeTCP, Interval: 1, Timeout: 1, UnhealthyThreshold: 1, HealthyThreshold: 1, TCP: TCPConfig{Send: "zz"}},
		"status":    {Type: TypeHTTP, Interval: 1, Timeout: 1, UnhealthyThreshold: 1, HealthyThreshold: 1, HTTP: HTTPConfig{Path: "/", ExpectedStatuses: [][2]int{{300, 200}}}},
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "health: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestHostFailedByARoutedResponseNeedsHealthyThresholdPasses checks that a
// host failed outside the checker (the router seeing
// x-envoy-immediate-health-check-fail on a response) comes back only after
// healthy_threshold passes, as in Envoy, not at the next pass because of
// the passes it had before.
func TestHostFailedByARoutedResponseNeedsHealthyThresholdPasses(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	cfg := fast(TypeHTTP)
	cfg.HTTP.Path = "/healthz"
	r, ch, _ := start(t, cfg, up.Addr)
	h := r.Host("backend", up.Addr)
	wait(t, ch, true)
	// Let the host pass more than healthy_threshold checks.
	for end := time.Now().Add(deadline); h.Checks() < 10; {
		if time.Now().After(end) {
			t.Fatalf("only %d checks within %v", h.Checks(), deadline)
		}
		time.Sleep(time.Millisecond)
	}
	checks := h.Checks()
	h.SetFlags(hoststate.FlagFailedActiveHC | hoststate.FlagImmediateHCFail) // as the router does
	wait(t, ch, true)
	if n := h.Checks() - checks; n < 3 {
		t.Fatalf("healthy again after %d passes, healthy_threshold is 3", n)
	}
}
