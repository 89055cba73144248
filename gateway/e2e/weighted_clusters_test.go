package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestWeightedClustersSplitRequestsByWeight sends 400 requests to a route
// whose weighted_clusters give stable 3, canary 1 and off 0, and checks
// the split (stable's expected share is 300 with a standard deviation of
// 8.7, the bounds are more than 5 of those away), that a weight of 0 gets
// nothing, and that an entry's own request headers reach only its cluster.
func TestWeightedClustersSplitRequestsByWeight(t *testing.T) {
	seen := func(name string) *testutil.Server {
		return testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s canary=%s", name, r.Header.Get("X-Canary"))
		}))
	}
	stable, canary, off := seen("stable"), seen("canary"), seen("off")
	routes := `
    [[route_config.virtual_host.route]]
    match = { prefix = "/" }
    weighted_clusters = [
      { name = "stable", weight = 3 },
      { name = "canary", weight = 1, request_headers_to_add = [{ key = "x-canary", value = "1" }] },
      { name = "off", weight = 0 },
    ]
`
	p := gwtest.Start(t, config(1, routes, cluster("stable", stable.Addr), cluster("canary", canary.Addr), cluster("off", off.Addr)))
	c := newClient(nil)
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		resp, body := get(t, c, "http://"+p.Addr("http")+"/x")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d, body %q", i, resp.StatusCode, body)
		}
		counts[string(body)]++
	}
	if n := counts["stable canary="]; n < 250 || n > 350 {
		t.Errorf("stable got %d of 400 requests, want about 300 (weight 3 of 4); all: %v", n, counts)
	}
	if n := counts["canary canary=1"]; n < 50 || n > 150 {
		t.Errorf("canary got %d of 400 requests with its x-canary header, want about 100 (weight 1 of 4); all: %v", n, counts)
	}
	if len(counts) != 2 {
		t.Errorf("responses %v: want only stable without x-canary and canary with it; off (weight 0) gets nothing", counts)
	}
	if n := off.RequestCount(); n != 0 {
		t.Errorf("the cluster of weight 0 got %d requests", n)
	}
}
