package stats

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// The test binary re-executed as a worker: it opens the region passed as
// fd 3, adds $SLUICE_STATS_CHILD_N to a counter, records one histogram
// value, sets a gauge, prints "done" and blocks until killed.
func TestMain(m *testing.M) {
	if n := os.Getenv("SLUICE_STATS_CHILD_N"); n != "" {
		os.Exit(child(n))
	}
	os.Exit(m.Run())
}

func child(nstr string) int {
	n, _ := strconv.Atoi(nstr)
	r, err := OpenRegion(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s := r.Slab(0)
	c := s.Cluster("backend")
	for i := 0; i < n; i++ {
		c.UpstreamRqTotal.Inc()
	}
	c.UpstreamRqTime.Record(3 * time.Millisecond)
	c.UpstreamCxActive.Add(7)
	fmt.Println("done")
	select {}
}

func testSchema(t testing.TB) *Schema {
	t.Helper()
	defs := append(ServerDefs(), ClusterDefs("backend")...)
	defs = append(defs, ListenerDefs("127.0.0.1:8080")...)
	defs = append(defs, HTTPDefs("ingress")...)
	s, err := NewSchema(defs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func makeRegion(t testing.TB, s *Schema, workers int) *Region {
	t.Helper()
	r, err := NewRegion(s, workers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func counter(t *testing.T, r *Region, name string) uint64 {
	t.Helper()
	st, ok := r.Snapshot().Get(name)
	if !ok {
		t.Fatalf("no stat %q", name)
	}
	return st.Counter
}

func gauge(t *testing.T, r *Region, name string) int64 {
	t.Helper()
	st, ok := r.Snapshot().Get(name)
	if !ok {
		t.Fatalf("no stat %q", name)
	}
	return st.Gauge
}

// startChild runs a worker process on slab 0 that counts n requests, and
// returns once it has.
func startChild(t *testing.T, r *Region, n int) *exec.Cmd {
	t.Helper()
	f, err := r.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SLUICE_STATS_CHILD_N="+strconv.Itoa(n))
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	return cmd
}

func TestKillNineLosesNoIncrement(t *testing.T) {
	r := makeRegion(t, testSchema(t), 2)
	cmd := startChild(t, r, 1000)
	if got := gauge(t, r, "cluster.backend.upstream_cx_active"); got != 7 {
		t.Fatalf("live gauge = %d, want 7", got)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	if got := counter(t, r, "cluster.backend.upstream_rq_total"); got != 1000 {
		t.Fatalf("after kill -9: counter = %d, want 1000", got)
	}
	// The supervisor reaps the worker: gauges are recomputed, counters stay.
	if err := r.ZeroGauges(0); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, r, "cluster.backend.upstream_cx_active"); got != 0 {
		t.Fatalf("dead worker's gauge = %d, want 0", got)
	}
	// The replacement continues in the same slab.
	startChild(t, r, 500)
	if got := counter(t, r, "cluster.backend.upstream_rq_total"); got != 1500 {
		t.Fatalf("after replacement: counter = %d, want 1500", got)
	}
	st, _ := r.Snapshot().Get("cluster.backend.upstream_rq_time")
	if st.Histogram.Count != 2 {
		t.Fatalf("histogram count = %d, want 2", st.Histogram.Count)
	}
}

func TestOpenRegionReadsSchemaFromMemory(t *testing.T) {
	s := testSchema(t)
	r := makeRegion(t, s, 3)
	f, err := r.File()
	if err != nil {
		t.Fatal(err)
	}
	// OpenRegion owns the fd: hand it a dup, as a new supervisor would get
	// one over SCM_RIGHTS.
	fd, err := dupFD(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenRegion(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.Schema().Hash() != s.Hash() || r2.Workers() != 3 {
		t.Fatalf("reopened region: hash %x workers %d", r2.Schema().Hash(), r2.Workers())
	}
	r2.Slab(2).Counter("server.worker_restarts").Add(4)
	if got := counter(t, r, "server.worker_restarts"); got != 4 {
		t.Fatalf("write through second mapping not seen: %d", got)
	}
}

func TestOpenRegionRejectsOtherFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not a region, but long enough to have a header of sixty-four bytes...")
	fd, err := dupFD(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRegion(fd); err == nil {
		t.Fatal("OpenRegion accepted a text file")
	}
}

func TestRetireKeepsCountersMonotonic(t *testing.T) {
	r := makeRegion(t, testSchema(t), 2)
	s := r.Slab(1)
	s.Counter("cluster.backend.upstream_rq_total").Add(10)
	s.Gauge("cluster.backend.upstream_rq_active").Set(3)
	s.Histogram("cluster.backend.upstream_rq_time").Record(time.Millisecond)
	if err := r.Retire(1); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, r, "cluster.backend.upstream_rq_total"); got != 10 {
		t.Fatalf("after retire: %d, want 10", got)
	}
	if got := gauge(t, r, "cluster.backend.upstream_rq_active"); got != 0 {
		t.Fatalf("retired gauge: %d, want 0", got)
	}
	if s.Counter("cluster.backend.upstream_rq_total").Value() != 0 {
		t.Fatal("retired slab not zeroed")
	}
	s.Counter("cluster.backend.upstream_rq_total").Add(5)
	if got := counter(t, r, "cluster.backend.upstream_rq_total"); got != 15 {
		t.Fatalf("new writer on recycled slab: %d, want 15", got)
	}
	st, _ := r.Snapshot().Get("cluster.backend.upstream_rq_time")
	if st.Histogram.Count != 1 {
		t.Fatalf("retired histogram count %d, want 1", st.Histogram.Count)
	}
}

func TestInheritMapsByName(t *testing.T) {
	old := makeRegion(t, testSchema(t), 1)
	old.Slab(0).Counter("cluster.backend.upstream_rq_total").Add(42)
	old.Slab(0).Histogram("cluster.backend.upstream_rq_time").Record(2 * time.Millisecond)
	old.Slab(0).Counter("listener.127.0.0.1_8080.downstream_cx_total").Add(9)
	// The new config drops the listener and adds a cluster: other indexes.
	defs := append(ServerDefs(), ClusterDefs("aaa")...)
	ns, err := NewSchema(append(defs, ClusterDefs("backend")...))
	if err != nil {
		t.Fatal(err)
	}
	r := makeRegion(t, ns, 2)
	r.Inherit(old)
	r.Slab(1).Counter("cluster.backend.upstream_rq_total").Inc()
	if got := counter(t, r, "cluster.backend.upstream_rq_total"); got != 43 {
		t.Fatalf("inherited counter %d, want 43", got)
	}
	if st, _ := r.Snapshot().Get("cluster.backend.upstream_rq_time"); st.Histogram.Count != 1 {
		t.Fatalf("inherited histogram count %d, want 1", st.Histogram.Count)
	}
	if _, ok := r.Snapshot().Get("listener.127.0.0.1_8080.downstream_cx_total"); ok {
		t.Fatal("removed listener's stat kept")
	}
}

func TestResetCounters(t *testing.T) {
	r := makeRegion(t, testSchema(t), 1)
	c := r.Slab(0).Counter("http.ingress.downstream_rq_total")
	c.Add(7)
	r.Slab(0).Histogram("http.ingress.downstream_rq_time").Record(time.Second)
	r.ResetCounters()
	if got := counter(t, r, "http.ingress.downstream_rq_total"); got != 0 {
		t.Fatalf("after reset: %d", got)
	}
	c.Add(2)
	if got := counter(t, r, "http.ingress.downstream_rq_total"); got != 2 {
		t.Fatalf("after reset and 2 more: %d", got)
	}
	if st, _ := r.Snapshot().Get("http.ingress.downstream_rq_time"); st.Histogram.Count != 0 {
		t.Fatalf("histogram not reset: %d", st.Histogram.Count)
	}
}

func TestUnknownNameIsHarmless(t *testing.T) {
	r := makeRegion(t, testSchema(t), 1)
	s := r.Slab(0)
	s.Counter("no.such").Inc()
	s.Gauge("no.such").Inc()
	s.Histogram("no.such").Record(time.Second)
	if s.Has("no.such", KindCounter) || !s.Has("server.live", KindGauge) {
		t.Fatal("Has is wrong")
	}
	if _, ok := r.Snapshot().Get("no.such"); ok {
		t.Fatal("unknown name aggregated")
	}
}

type hcmLike struct {
	StatPrefix  string
	HTTPFilters []config.Filter
}

func (c *hcmLike) Build(*registry.BuildContext) (any, error) { return nil, nil }
func (c *hcmLike) Nested() (registry.Kind, string, []config.Filter) {
	return registry.HTTP, "http_filter", c.HTTPFilters
}

type filterWithStats struct{}

func (filterWithStats) Build(*registry.BuildContext) (any, error) { return nil, nil }
func (filterWithStats) StatDefs(scope string) []Def {
	return []Def{{Name: scope + "ext_authz.denied", Kind: KindCounter}}
}

func TestFromConfigIsDeterministic(t *testing.T) {
	cfg := &config.Config{
		Listeners: []config.Listener{{
			Address: "127.0.0.1:8080",
			FilterChains: []config.FilterChain{{Filters: []config.Filter{{
				Decoded: &hcmLike{StatPrefix: "ingress", HTTPFilters: []config.Filter{{Decoded: filterWithStats{}}}},
			}}}},
		}},
		Clusters: []config.Cluster{{Name: "b"}, {Name: "a"}},
	}
	s1, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clusters[0], cfg.Clusters[1] = cfg.Clusters[1], cfg.Clusters[0]
	s2, _ := FromConfig(cfg)
	if s1.Hash() != s2.Hash() {
		t.Fatal("same stats, different schema")
	}
	for _, name := range []string{
		"listener.127.0.0.1_8080.downstream_cx_total", "listener.127.0.0.1_8080.downstream_cx_active",
		"http.ingress.downstream_rq_total", "http.ingress.downstream_rq_2xx", "http.ingress.downstream_rq_4xx",
		"http.ingress.downstream_rq_5xx", "http.ingress.downstream_rq_time", "http.ingress.ext_authz.denied",
		"cluster.a.upstream_rq_total", "cluster.b.upstream_cx_active", "cluster.b.upstream_rq_time",
		"cluster.b.upstream_cx_connect_fail", "server.live", "server.hot_restart_generation", "server.uptime",
	} {
		if _, _, ok := s1.Lookup(name); !ok {
			t.Errorf("missing %s", name)
		}
	}
}

func TestSchemaRejectsKindConflict(t *testing.T) {
	_, err := NewSchema([]Def{{Name: "a", Kind: KindCounter}, {Name: "a", Kind: KindGauge}})
	if err == nil {
		t.Fatal("conflicting kinds accepted")
	}
}

func TestMergeAddsByName(t *testing.T) {
	a := makeRegion(t, testSchema(t), 1)
	ns, _ := NewSchema(append(ServerDefs(), ClusterDefs("backend")...))
	b := makeRegion(t, ns, 1)
	a.Slab(0).Cluster("backend").UpstreamRqTotal.Add(2)
	b.Slab(0).Cluster("backend").UpstreamRqTotal.Add(3)
	a.Slab(0).Cluster("backend").UpstreamRqTime.Record(time.Millisecond)
	b.Slab(0).Cluster("backend").UpstreamRqTime.Record(time.Millisecond)
	m := Merge(a.Snapshot(), b.Snapshot())
	if st, _ := m.Get("cluster.backend.upstream_rq_total"); st.Counter != 5 {
		t.Fatalf("merged counter %d, want 5", st.Counter)
	}
	if st, _ := m.Get("cluster.backend.upstream_rq_time"); st.Histogram.Count != 2 {
		t.Fatalf("merged histogram count %d, want 2", st.Histogram.Count)
	}
	if st, _ := a.Snapshot().Get("cluster.backend.upstream_rq_time"); st.Histogram.Count != 1 {
		t.Fatal("Merge modified its input")
	}
	if _, ok := m.Get("listener.127.0.0.1_8080.downstream_cx_total"); !ok {
		t.Fatal("stat only in one snapshot lost")
	}
}
