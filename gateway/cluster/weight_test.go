package cluster

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
)

func TestEndpointWeightsShareTrafficByWeight(t *testing.T) {
	cfg := &config.Config{Clusters: []config.Cluster{{
		Name:            "c",
		Type:            "static",
		LBPolicy:        "round_robin",
		Endpoints:       []string{"127.0.0.1:1", "127.0.0.1:2"},
		EndpointWeights: []uint32{3, 1},
	}}}
	m, err := NewManager(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Get("c")
	picks := map[string]int{}
	for range 400 {
		h, err := c.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		picks[h.Address]++
	}
	if picks["127.0.0.1:1"] != 300 || picks["127.0.0.1:2"] != 100 {
		t.Fatalf("picks %v, want 300 and 100 (weights 3 and 1, weighted round robin)", picks)
	}
}
