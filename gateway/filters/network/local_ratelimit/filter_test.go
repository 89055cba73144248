package localratelimit

import (
	"net"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// conn is a netfilter.Conn over a real loopback TCP connection; only Close
// is used by the filter.
type conn struct {
	netfilter.Conn
	c net.Conn
}

func (c *conn) Close() error { return c.c.Close() }

type callbacks struct{ c *conn }

func (cb *callbacks) Conn() netfilter.Conn { return cb.c }
func (cb *callbacks) ContinueReading()     {}

func TestConnectionsOverTheLimitAreClosed(t *testing.T) {
	r, err := hoststate.New(hoststate.Options{Slots: 16, Workers: 2, ArenaWords: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := &Config{}
	if _, err := toml.Decode(`
stat_prefix = "tcp"
token_bucket = { max_tokens = 3, fill_interval = "1h" }
`, cfg); err != nil {
		t.Fatal(err)
	}
	ctx := &registry.BuildContext{Path: "listener[0].filter_chain[0].network_filter[0]"}
	w0, err := cfg.BuildWith(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	w1, _ := cfg.BuildWith(ctx, r) // a second worker: same bucket

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := 0
	for i := 0; i < 5; i++ {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f := w0
		if i%2 == 1 {
			f = w1
		}
		fl := f.NewFilter(&callbacks{&conn{c: server}}).(netfilter.ReadFilter)
		st := fl.OnNewConnection()
		// A refused connection is closed: the client reads EOF.
		buf := make([]byte, 1)
		if st == netfilter.Continue {
			accepted++
			server.Close()
		} else if _, err := client.Read(buf); err == nil {
			t.Fatalf("connection %d refused but not closed", i)
		}
		client.Close()
	}
	if accepted != 3 {
		t.Fatalf("%d connections accepted across two workers, want 3", accepted)
	}
	if got := w0.Stats().RateLimited.Value() + w1.Stats().RateLimited.Value(); got != 2 {
		t.Fatalf("rate_limited %d, want 2", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{`token_bucket = { max_tokens = 1, fill_interval = "1s" }`, "stat_prefix"},
		{`stat_prefix = "x"`, "token_bucket"},
	} {
		c := &Config{}
		toml.Decode(tc.toml, c)
		if _, err := c.Build(&registry.BuildContext{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.toml, err)
		}
	}
	if _, ok := registry.Lookup(Name); !ok {
		t.Fatal("filter not registered")
	}
}
