package hcm_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// chainAwareConfig builds a factory that records its ChainBuilt calls; with
// fail = true ChainBuilt returns an error about its key "fail".
type chainAwareConfig struct {
	Tag  string `toml:"tag"`
	Fail bool   `toml:"fail"`
}

type chainAwareFactory struct {
	httpfilter.FactoryFunc
	tag   string
	fail  bool
	calls [][]httpfilter.Factory
}

// chainAwareBuilt lists the factories built, in build order.
var chainAwareBuilt struct {
	sync.Mutex
	fs []*chainAwareFactory
}

func (c *chainAwareConfig) Build(*registry.BuildContext) (any, error) {
	f := &chainAwareFactory{tag: c.Tag, fail: c.Fail,
		FactoryFunc: func(httpfilter.DecoderCallbacks) any { return nil }}
	chainAwareBuilt.Lock()
	chainAwareBuilt.fs = append(chainAwareBuilt.fs, f)
	chainAwareBuilt.Unlock()
	return f, nil
}

func (f *chainAwareFactory) ChainBuilt(chain []httpfilter.Factory) error {
	f.calls = append(f.calls, chain)
	if f.fail {
		return registry.Errorf("fail", "refused by %s", f.tag)
	}
	return nil
}

func init() {
	registry.Register(registry.Info{Name: "sluice.filters.http.test_chain_aware", Kind: registry.HTTP, New: func() registry.Config { return &chainAwareConfig{} }})
}

// buildChainAware builds a generation whose HTTP connection manager has
// test_chain_aware filters with the given tags (a tag "fail" fails), async
// between them, and returns the factories built and the build error.
func buildChainAware(t *testing.T, tags ...string) ([]*chainAwareFactory, error) {
	t.Helper()
	var chain strings.Builder
	for _, tag := range tags {
		fmt.Fprintf(&chain, "[[listener.filter_chain.filter.config.http_filter]]\nname = \"sluice.filters.http.test_chain_aware\"\n[listener.filter_chain.filter.config.http_filter.config]\ntag = %q\nfail = %v\n", tag, tag == "fail")
		chain.WriteString("[[listener.filter_chain.filter.config.http_filter]]\nname = \"sluice.filters.http.test_async\"\n")
	}
	text := fmt.Sprintf(`
[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "t"
route_config = "r"
%s
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"

[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/" }
cluster = "up"

[[cluster]]
name = "up"
endpoints = ["127.0.0.1:1"]
`, chain.String())
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	chainAwareBuilt.Lock()
	chainAwareBuilt.fs = nil
	chainAwareBuilt.Unlock()
	g, err := server.Build(cfg, server.Options{})
	if err == nil {
		g.Close()
	}
	chainAwareBuilt.Lock()
	defer chainAwareBuilt.Unlock()
	return chainAwareBuilt.fs, err
}

// TestChainAwareFactoriesLearnTheirChain checks the httpfilter.ChainAware
// contract: each such factory's ChainBuilt runs once, during the build,
// with the whole chain in config order (itself included); an error fails
// the build naming the filter's config key.
func TestChainAwareFactoriesLearnTheirChain(t *testing.T) {
	fs, err := buildChainAware(t, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("%d chain-aware factories built, want 2", len(fs))
	}
	for i, f := range fs {
		if len(f.calls) != 1 {
			t.Fatalf("factory %s: ChainBuilt called %d times, want once", f.tag, len(f.calls))
		}
		chain := f.calls[0]
		// a, async, b, async, router.
		if len(chain) != 5 {
			t.Fatalf("factory %s: chain of %d factories, want 5", f.tag, len(chain))
		}
		if chain[2*i] != httpfilter.Factory(f) {
			t.Errorf("factory %s is not at index %d of its chain", f.tag, 2*i)
		}
		if chain[2*(1-i)] != httpfilter.Factory(fs[1-i]) {
			t.Errorf("factory %s: its sibling is not at index %d", f.tag, 2*(1-i))
		}
	}

	_, err = buildChainAware(t, "a", "fail")
	var fe *registry.FieldError
	if err == nil || !strings.Contains(err.Error(), "http_filter[2].config.fail") || !strings.Contains(err.Error(), "refused by fail") {
		t.Errorf("build error %v, want one naming http_filter[2].config.fail", err)
	} else if errors.As(err, &fe) && !strings.HasSuffix(fe.Key, "http_filter[2].config.fail") {
		t.Errorf("error key %q, want it to end in http_filter[2].config.fail", fe.Key)
	}
}
