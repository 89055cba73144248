package cluster

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/pool"
)

// TestPoolPerPriority: a host has one pool per routing priority, each
// bounded by its own priority's max_connections.
func TestPoolPerPriority(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 8)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	one, two := 1, 2
	cfg := &config.Config{Clusters: []config.Cluster{{
		Name: "prio", Type: "static", LBPolicy: "round_robin", Endpoints: []string{ln.Addr().String()},
		MaxIdleConnections: 1,
		CircuitBreakers: config.CircuitBreakersConfig{MaxConnections: &one,
			High: &config.PriorityThresholds{MaxConnections: &two}},
	}}}
	m, err := NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	h := m.Get("prio").Hosts()[0]
	if h.PoolOf(hoststate.PriorityDefault) != h.Pool || h.PoolOf(hoststate.PriorityHigh) != h.HighPool || h.Pool == h.HighPool {
		t.Fatal("PoolOf does not give each priority its own pool")
	}
	ctx := context.Background()
	d, err := h.Pool.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := h.Pool.Dial(ctx); !errors.Is(err, pool.ErrOverflow) {
		t.Fatalf("second default connection: err = %v, want ErrOverflow (max_connections 1)", err)
	}
	for i := range 2 {
		c, err := h.HighPool.Dial(ctx)
		if err != nil {
			t.Fatalf("high connection %d with the default priority at its limit: %v", i+1, err)
		}
		defer c.Close()
	}
	if _, err := h.HighPool.Dial(ctx); !errors.Is(err, pool.ErrOverflow) {
		t.Fatalf("third high connection: err = %v, want ErrOverflow (high max_connections 2)", err)
	}
}
