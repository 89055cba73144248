package cluster

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowRuns makes each run's cluster names unique: host records live in the
// process's region, which outlives a test (go test -count).
var slowRuns atomic.Int64

// uniqueConfig replaces NAME in text with a cluster name of its own.
func uniqueConfig(text, base string) (string, string) {
	name := fmt.Sprintf("%s%d", base, slowRuns.Add(1))
	return strings.ReplaceAll(text, "NAME", name), name
}

// share picks n hosts of c and returns the fraction that went to addr.
func share(t *testing.T, c *Cluster, addr string, n int) float64 {
	t.Helper()
	got := 0
	for range n {
		h, err := c.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		if h.Address == addr {
			got++
		}
	}
	return float64(got) / float64(n)
}

// TestSlowStartRampsUpAHostThatJoins checks that a host joining a DNS
// cluster that has hosts gets a reduced share during slow_start.window
// (min_weight_percent, 10 %, at first), while the cluster's first hosts do
// not.
func TestSlowStartRampsUpAHostThatJoins(t *testing.T) {
	text, name := uniqueConfig(`
[[cluster]]
name = "NAME"
type = "strict_dns"
endpoints = ["api.test:80"]
  [cluster.slow_start]
  window = "1h"
`, "slowjoin")
	m := testManager(t, "slowjoin.toml", text)
	c := m.Get(name)
	if err := SetResolvedHosts(name, []string{"10.0.0.1:80", "10.0.0.2:80"}); err != nil {
		t.Fatal(err)
	}
	if s := share(t, c, "10.0.0.2:80", 2000); s < 0.4 || s > 0.6 {
		t.Fatalf("a first host got %.0f %% of the picks, want about 50 %% (no slow start)", 100*s)
	}
	if err := SetResolvedHosts(name, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}); err != nil {
		t.Fatal(err)
	}
	// Weights 1, 1 and 0.1: the new host gets about 5 %.
	if s := share(t, c, "10.0.0.3:80", 4000); s > 0.15 || s == 0 {
		t.Fatalf("the host that just joined got %.1f %% of the picks, want about 5 %% (slow start at 10 %% of its weight)", 100*s)
	}
}

// TestSlowStartRampsUpAHostBackFromAFailedHealthCheck checks that a host
// active health checking brought back less than slow_start.window ago gets
// a reduced share.
func TestSlowStartRampsUpAHostBackFromAFailedHealthCheck(t *testing.T) {
	text, name := uniqueConfig(`
[[cluster]]
name = "NAME"
endpoints = ["10.0.1.1:80", "10.0.1.2:80"]
  [cluster.slow_start]
  window = "1h"
`, "slowhc")
	m := testManager(t, "slowhc.toml", text)
	c := m.Get(name)
	if s := share(t, c, "10.0.1.2:80", 2000); s < 0.4 || s > 0.6 {
		t.Fatalf("a host got %.0f %% of the picks, want about 50 %% (no slow start)", 100*s)
	}
	c.Hosts()[1].State.SetHealthySince(time.Now()) // as the health checker does
	// Weights 1 and 0.1: about 9 %.
	if s := share(t, c, "10.0.1.2:80", 4000); s > 0.2 || s == 0 {
		t.Fatalf("the host back from a failed health check got %.1f %% of the picks, want about 9 %%", 100*s)
	}
}
