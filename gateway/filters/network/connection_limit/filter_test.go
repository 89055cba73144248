package connlimit

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// stubConn records Close; the filter uses nothing else of the connection.
type stubConn struct {
	netfilter.Conn
	closed atomic.Bool
}

func (c *stubConn) Close() error { c.closed.Store(true); return nil }

type callbacks struct{ c *stubConn }

func (cb callbacks) Conn() netfilter.Conn { return cb.c }
func (cb callbacks) ContinueReading()     {}

// open runs a new connection through f's filter.
func open(f *Factory) (netfilter.ReadFilter, *stubConn, netfilter.Status) {
	c := &stubConn{}
	fl := f.NewFilter(callbacks{c}).(netfilter.ReadFilter)
	return fl, c, fl.OnNewConnection()
}

func TestConfigBuildRejectsInvalidTables(t *testing.T) {
	cases := []struct {
		name, key, want string
		cfg             Config
	}{
		{"no stat_prefix", "stat_prefix", "required", Config{MaxConnections: 1}},
		{"no max", "max_connections", ">= 1", Config{StatPrefix: "p"}},
		{"negative delay", "delay", "must be in", Config{StatPrefix: "p", MaxConnections: 1, Delay: config.Duration{Duration: -1}}},
		{"long delay", "delay", "must be in", Config{StatPrefix: "p", MaxConnections: 1, Delay: config.Duration{Duration: time.Hour}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Build(&registry.BuildContext{})
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want key %s: %s", err, tc.key, tc.want)
			}
		})
	}
}

func TestLimitIsSplitAcrossWorkersRoundingUp(t *testing.T) {
	cases := []struct{ max, workers, want int }{
		{10, 0, 10}, // unknown worker count: one worker
		{10, 1, 10},
		{10, 3, 4},
		{10, 5, 2},
		{1, 4, 1},
	}
	for _, tc := range cases {
		f, err := (&Config{StatPrefix: "p", MaxConnections: tc.max}).Build(&registry.BuildContext{Workers: tc.workers})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.(*Factory).Limit(); got != tc.want {
			t.Errorf("max %d over %d workers: limit %d, want %d", tc.max, tc.workers, got, tc.want)
		}
	}
}

func TestConnectionAboveLimitIsClosedAndCountedUntilOneCloses(t *testing.T) {
	f, err := (&Config{StatPrefix: "p", MaxConnections: 2}).build(1)
	if err != nil {
		t.Fatal(err)
	}
	first, _, s1 := open(f)
	_, _, s2 := open(f)
	if s1 != netfilter.Continue || s2 != netfilter.Continue {
		t.Fatalf("statuses %v %v, want Continue for the first two", s1, s2)
	}
	refused, c3, s3 := open(f)
	if s3 != netfilter.StopIteration || !c3.closed.Load() {
		t.Fatalf("third connection: status %v, closed %v; want StopIteration and closed", s3, c3.closed.Load())
	}
	// The refused connection's close event gives nothing back.
	refused.OnEvent(netfilter.LocalClose)
	if a, l := f.Stats().ActiveConnections.Load(), f.Stats().LimitedConnections.Load(); a != 2 || l != 1 {
		t.Fatalf("active %d, limited %d; want 2, 1", a, l)
	}
	// A close frees one unit, once.
	first.OnEvent(netfilter.LocalClose)
	first.OnEvent(netfilter.LocalClose)
	if a := f.Stats().ActiveConnections.Load(); a != 1 {
		t.Fatalf("active %d after one close, want 1", a)
	}
	if _, _, s := open(f); s != netfilter.Continue {
		t.Fatalf("status %v after a close, want Continue", s)
	}
}

func TestConcurrentConnectionsNeverExceedTheLimit(t *testing.T) {
	const limit, conns = 10, 200
	f, err := (&Config{StatPrefix: "p", MaxConnections: limit}).build(1)
	if err != nil {
		t.Fatal(err)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			if _, _, s := open(f); s == netfilter.Continue {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != limit || f.Stats().LimitedConnections.Load() != conns-limit {
		t.Fatalf("admitted %d, limited %d; want %d, %d", admitted.Load(), f.Stats().LimitedConnections.Load(), limit, conns-limit)
	}
}

func TestDelayHoldsARefusedConnectionBeforeClosing(t *testing.T) {
	const delay = 50 * time.Millisecond
	f, err := (&Config{StatPrefix: "p", MaxConnections: 1, Delay: config.Duration{Duration: delay}}).build(1)
	if err != nil {
		t.Fatal(err)
	}
	open(f)
	start := time.Now()
	_, c, s := open(f)
	if el := time.Since(start); s != netfilter.StopIteration || !c.closed.Load() || el < delay {
		t.Fatalf("status %v, closed %v after %v; want StopIteration, closed after at least %v", s, c.closed.Load(), el, delay)
	}
}
