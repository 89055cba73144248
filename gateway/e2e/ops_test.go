package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// Operational cases: what someone running sluice at the edge of a service
// under systemd does to it over weeks (many reloads, bad starts, scraping
// the admin API), beyond a single lifecycle.

// statsMemfds counts the stats regions (memfds) process pid holds open.
func statsMemfds(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.Contains(l, "sluice-stats") {
			n++
		}
	}
	return n
}

// TestReloadsDoNotLeakStatsRegions reloads an unchanged config many times
// and checks that the supervisor holds no more stats regions afterwards
// than before: each reload validates the file by building a dry-run
// generation, which used to keep its own stats memfd (and mapping, and its
// clusters) for the life of the supervisor, one more per reload.
func TestReloadsDoNotLeakStatsRegions(t *testing.T) {
	p := gwtest.Start(t, simpleConfig(1, "127.0.0.1:1"))
	reloadOK(t, p, "first reload")
	before := statsMemfds(t, p.Pid())
	const reloads = 6
	for i := range reloads {
		reloadOK(t, p, fmt.Sprintf("reload %d", i+2))
	}
	// The replaced generations drain (no connections: at once) and give
	// their slabs back; what is left is the serving region.
	deadline := time.Now().Add(ioTimeout)
	n := statsMemfds(t, p.Pid())
	for n > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = statsMemfds(t, p.Pid())
	}
	if n > before {
		t.Fatalf("supervisor holds %d stats memfds after %d more reloads, %d before: a reload leaks one", n, reloads, before)
	}
}

// TestClusterMembershipIsNotMultipliedByWorkers checks that
// cluster.<name>.membership_total and membership_healthy count the
// cluster's hosts, as in Envoy, whatever the number of workers: every
// worker holds the whole cluster and sets the gauges in its own slab, and
// the supervisor used to add them up (3 workers, 2 hosts: 6).
func TestClusterMembershipIsNotMultipliedByWorkers(t *testing.T) {
	cfg := config(3, route(`prefix = "/"`, "up"), cluster("up", "127.0.0.1:1", "127.0.0.1:2")) +
		"\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, cfg)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	check := func(when string) {
		t.Helper()
		st := adminCounters(t, admin)
		for _, name := range []string{"cluster.up.membership_total", "cluster.up.membership_healthy"} {
			if got := st[name]; got != 2 {
				t.Errorf("%s: %s = %v, want 2 (the cluster's hosts)", when, name, got)
			}
		}
	}
	check("after start")
	reloadOK(t, p, "reload")
	check("after a reload")
}
