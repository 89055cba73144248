package cluster

import (
	"slices"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

func dnsManager(t *testing.T, name string) *Manager {
	t.Helper()
	return testManager(t, name+".toml", `
[[cluster]]
name = "`+name+`"
type = "strict_dns"
endpoints = ["api.test:80"]
`)
}

// testManager builds the clusters of the config text (file name for
// errors) with a stats region of one slab.
func testManager(t *testing.T, name, text string) *Manager {
	t.Helper()
	cfg, err := config.Parse(name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := stats.FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	region, err := stats.NewRegion(schema, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(cfg, region.Slab(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func addrs(c *Cluster) []string {
	var out []string
	for _, h := range c.Hosts() {
		out = append(out, h.Address)
	}
	return out
}

func TestResolvedHostsSwapAtomicallyWhilePicking(t *testing.T) {
	m := dnsManager(t, "swap")
	c := m.Get("swap")
	if _, err := c.Pick(nil); err == nil {
		t.Fatal("a DNS cluster picked a host before its first resolution")
	}
	if err := SetResolvedHosts("swap", []string{"10.0.0.1:80", "10.0.0.2:80"}); err != nil {
		t.Fatal(err)
	}
	kept := c.Hosts()[1]
	sets := [][]string{{"10.0.0.2:80", "10.0.0.3:80"}, {"10.0.0.1:80", "10.0.0.2:80"}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h, err := c.Pick(nil)
				if err != nil || !slices.Contains([]string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, h.Address) {
					t.Errorf("pick = %v, %v", h, err)
					return
				}
			}
		}()
	}
	for i := range 200 {
		if err := SetResolvedHosts("swap", sets[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := addrs(c); !slices.Equal(got, sets[1]) {
		t.Fatalf("hosts = %v, want %v", got, sets[1])
	}
	if c.Hosts()[1] != kept {
		t.Error("a host present in every set was rebuilt (its pool and counters lost)")
	}
	// A manager built later starts from the last set.
	if got := addrs(dnsManager(t, "swap").Get("swap")); !slices.Equal(got, sets[1]) {
		t.Errorf("a new manager's hosts = %v, want %v", got, sets[1])
	}
}
