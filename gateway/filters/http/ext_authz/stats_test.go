package extauthz

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

func TestStatsLiveUnderTheConnectionManagersScope(t *testing.T) {
	c := &Config{Plugin: "p"}
	schema, err := stats.NewSchema(c.StatDefs("http.ingress."))
	if err != nil {
		t.Fatal(err)
	}
	region, err := stats.NewRegion(schema, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	built, err := c.Build(&registry.BuildContext{DryRun: true, Stats: region.Slab(0), StatScope: "http.ingress."})
	if err != nil {
		t.Fatal(err)
	}
	f := built.(*Factory)
	f.Stats.Denied.Inc()
	f.Stats.Timeout.Add(2)
	snap := region.Snapshot()
	for name, want := range map[string]uint64{"http.ingress.ext_authz.denied": 1, "http.ingress.ext_authz.timeout": 2, "http.ingress.ext_authz.ok": 0} {
		if s, ok := snap.Get(name); !ok || s.Counter != want {
			t.Errorf("%s = %+v (found %v), want %d", name, s, ok, want)
		}
	}
}
