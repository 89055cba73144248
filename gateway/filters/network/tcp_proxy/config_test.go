package tcpproxy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestConfigBuildRejectsInvalidTables(t *testing.T) {
	a, _ := roundRobin("a", "127.0.0.1:1")
	b, _ := roundRobin("b", "127.0.0.1:2")
	lookup := lookupOf(a, b)
	cases := []struct {
		name    string
		cfg     Config
		key     string
		wantErr string
	}{
		{"no stat_prefix", Config{Cluster: "a"}, "stat_prefix", "required"},
		{"no cluster", Config{StatPrefix: "p"}, "cluster", "one of cluster and weighted_clusters"},
		{"both", Config{StatPrefix: "p", Cluster: "a", WeightedClusters: []WeightedCluster{{"b", 1}}}, "cluster", "exclusive"},
		{"unknown cluster", Config{StatPrefix: "p", Cluster: "nope"}, "cluster", `"nope" does not exist`},
		{"unknown weighted", Config{StatPrefix: "p", WeightedClusters: []WeightedCluster{{"a", 1}, {"nope", 1}}}, "weighted_clusters[1].name", "does not exist"},
		{"negative weight", Config{StatPrefix: "p", WeightedClusters: []WeightedCluster{{"a", -1}}}, "weighted_clusters[0].weight", "must be in"},
		{"zero sum", Config{StatPrefix: "p", WeightedClusters: []WeightedCluster{{"a", 0}, {"b", 0}}}, "weighted_clusters", "sum to 0"},
		{"negative idle", Config{StatPrefix: "p", Cluster: "a", IdleTimeout: dur(-time.Second)}, "idle_timeout", ">= 0"},
		{"attempts too many", Config{StatPrefix: "p", Cluster: "a", MaxConnectAttempts: 101}, "max_connect_attempts", "1..100"},
		{"attempts negative", Config{StatPrefix: "p", Cluster: "a", MaxConnectAttempts: -1}, "max_connect_attempts", "1..100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.build(nil, lookup)
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if fe.Key != tc.key || !strings.Contains(fe.Err.Error(), tc.wantErr) {
				t.Fatalf("err = %q (key %q), want key %q and %q", err, fe.Key, tc.key, tc.wantErr)
			}
		})
	}
}

func TestConfigBuildAppliesEnvoyDefaults(t *testing.T) {
	a, _ := roundRobin("a", "127.0.0.1:1")
	f, err := (&Config{StatPrefix: "p", Cluster: "a"}).build(nil, lookupOf(a))
	if err != nil {
		t.Fatal(err)
	}
	if f.idleTimeout != time.Hour || f.attempts != 1 || f.StatPrefix() != "p" {
		t.Fatalf("idle %v, attempts %d, prefix %q; want 1h, 1, p", f.idleTimeout, f.attempts, f.StatPrefix())
	}
	f, err = (&Config{StatPrefix: "p", Cluster: "a", IdleTimeout: dur(0), MaxConnectAttempts: 3}).build(nil, lookupOf(a))
	if err != nil {
		t.Fatal(err)
	}
	if f.idleTimeout != 0 || f.attempts != 3 {
		t.Fatalf("idle %v, attempts %d; want 0 (disabled), 3", f.idleTimeout, f.attempts)
	}
}

func TestConfigBuildWithoutClusterManagerFails(t *testing.T) {
	_, err := (&Config{StatPrefix: "p", Cluster: "a"}).Build(&registry.BuildContext{})
	if err == nil || !strings.HasPrefix(err.Error(), "tcp_proxy: ") {
		t.Fatalf("err = %v, want a tcp_proxy error", err)
	}
}

func TestWeightedClustersPickByWeight(t *testing.T) {
	a, _ := roundRobin("a", "127.0.0.1:1")
	b, _ := roundRobin("b", "127.0.0.1:2")
	c, _ := roundRobin("c", "127.0.0.1:3")
	f, err := (&Config{StatPrefix: "p", WeightedClusters: []WeightedCluster{{"a", 1}, {"b", 3}, {"c", 0}}}).build(nil, lookupOf(a, b, c))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40000
	counts := map[string]int{}
	for range n {
		counts[f.pick().name]++
	}
	if counts["c"] != 0 {
		t.Fatalf("cluster c with weight 0 got %d picks", counts["c"])
	}
	// a's share is 1/4: 10000 expected, standard deviation about 87.
	if counts["a"] < 9000 || counts["a"] > 11000 || counts["a"]+counts["b"] != n {
		t.Fatalf("picks %v, want about 10000 a and 30000 b", counts)
	}
}
