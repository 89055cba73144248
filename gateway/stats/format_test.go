package stats

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

func filledRegion(t *testing.T) *Region {
	t.Helper()
	r := makeRegion(t, testSchema(t), 2)
	c := r.Slab(0).Cluster("backend")
	c.UpstreamRqTotal.Add(3)
	r.Slab(1).Cluster("backend").UpstreamRqTotal.Add(4)
	c.UpstreamCxActive.Set(2)
	for _, ms := range []int{1, 2, 3, 4, 100} {
		c.UpstreamRqTime.Record(time.Duration(ms) * time.Millisecond)
	}
	h := r.Slab(1).HTTP("ingress")
	h.Response(200)
	h.Response(503)
	h.Response(503)
	return r
}

func TestQuantilesWithinBucketError(t *testing.T) {
	var h HistogramValue
	for i := 1; i <= 1000; i++ {
		h.Buckets[bucketOf(uint64(i)*1000)]++ // 1ms .. 1000ms
		h.Count++
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.125 {
			t.Errorf("q%v = %v, want %v..+12.5%%", tc.q, got, tc.want)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	prevHi := uint64(0)
	for i := 0; i < NumBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi || bucketOf(lo) != i || (i < NumBuckets-1 && bucketOf(hi-1) != i) {
			t.Fatalf("bucket %d = [%d,%d), previous ended at %d", i, lo, hi, prevHi)
		}
		prevHi = hi
	}
	if bucketOf(^uint64(0)) != NumBuckets-1 {
		t.Fatal("huge value not in last bucket")
	}
}

func TestTextFilterUsedOnly(t *testing.T) {
	r := filledRegion(t)
	var b bytes.Buffer
	snap := r.Snapshot().Select(regexp.MustCompile(`^cluster\.backend\.upstream_(rq_total|cx_active|rq_time|rq_timeout)$`), false)
	if err := WriteText(&b, snap); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"cluster.backend.upstream_rq_total: 7\n", "cluster.backend.upstream_cx_active: 2\n", "cluster.backend.upstream_rq_timeout: 0\n", "cluster.backend.upstream_rq_time: P50="} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "http.") {
		t.Error("filter= let other stats through")
	}
	b.Reset()
	WriteText(&b, r.Snapshot().Select(nil, true))
	if strings.Contains(b.String(), "upstream_rq_timeout") || !strings.Contains(b.String(), "http.ingress.downstream_rq_5xx: 2") {
		t.Errorf("usedonly output wrong:\n%s", b.String())
	}
}

func TestJSON(t *testing.T) {
	r := filledRegion(t)
	var b bytes.Buffer
	if err := WriteJSON(&b, r.Snapshot().Select(regexp.MustCompile(`^cluster\.backend\.upstream_rq_(total|time)$`), false)); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stats []struct {
			Name      string             `json:"name"`
			Type      string             `json:"type"`
			Value     int64              `json:"value"`
			Count     uint64             `json:"count"`
			Quantiles map[string]float64 `json:"quantiles_ms"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Stats) != 2 || doc.Stats[1].Value != 7 || doc.Stats[1].Type != "counter" {
		t.Fatalf("json: %s", b.String())
	}
	h := doc.Stats[0]
	if h.Type != "histogram" || h.Count != 5 || h.Quantiles["P50"] < 3 || h.Quantiles["P50"] > 3.375 {
		t.Fatalf("json histogram: %+v", h)
	}
}

func TestPrometheusParses(t *testing.T) {
	r := filledRegion(t)
	r.ServerSlab().Server().Live.Set(1)
	var b bytes.Buffer
	if err := WritePrometheus(&b, r.Snapshot()); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b.String())
	}
	rq := fams["sluice_cluster_upstream_rq_total"]
	if rq == nil || rq.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("upstream_rq_total family: %v", rq)
	}
	if m := rq.Metric[0]; labels(m)["cluster_name"] != "backend" || m.GetCounter().GetValue() != 7 {
		t.Fatalf("upstream_rq_total: %v", m)
	}
	if g := fams["sluice_cluster_upstream_cx_active"]; g.GetType() != dto.MetricType_GAUGE || g.Metric[0].GetGauge().GetValue() != 2 {
		t.Fatalf("upstream_cx_active: %v", g)
	}
	if g := fams["sluice_server_live"]; g.GetType() != dto.MetricType_GAUGE || g.Metric[0].GetGauge().GetValue() != 1 || len(g.Metric[0].Label) != 0 {
		t.Fatalf("server_live: %v", g)
	}
	xx := fams["sluice_http_downstream_rq_xx"]
	if xx.GetType() != dto.MetricType_COUNTER || len(xx.Metric) != 5 {
		t.Fatalf("downstream_rq_xx: %v", xx)
	}
	for _, m := range xx.Metric {
		l := labels(m)
		want := map[string]float64{"1": 0, "2": 1, "3": 0, "4": 0, "5": 2}[l["response_code_class"]]
		if l["http_conn_manager_prefix"] != "ingress" || m.GetCounter().GetValue() != want {
			t.Errorf("downstream_rq_xx %v = %v, want %v", l, m.GetCounter().GetValue(), want)
		}
	}
	ht := fams["sluice_cluster_upstream_rq_time"]
	if ht.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("upstream_rq_time type %v", ht.GetType())
	}
	h := ht.Metric[0].GetHistogram()
	if h.GetSampleCount() != 5 || h.GetSampleSum() != 110 {
		t.Fatalf("histogram count %d sum %v, want 5, 110", h.GetSampleCount(), h.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, bk := range h.Bucket {
		cum[bk.GetUpperBound()] = bk.GetCumulativeCount()
	}
	// 1,2,3,4 ms are ≤ 5 ms; 100 ms is ≤ 100 ms only if on a boundary (it
	// is not: it falls in [96, 104) ms), so it appears from 250.
	if cum[0.5] != 0 || cum[5] != 4 || cum[50] != 4 || cum[250] != 5 {
		t.Fatalf("buckets %v", cum)
	}
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestPrometheusIsStrictAndTagsFilterStats checks the exposition with a
// strict parser (testutil.ParsePrometheusText) on a schema with filter
// stats of two stat_prefixes each: they are exported as Envoy's tag
// extractors do, one family per stat with the prefix as a label, not one
// family per prefix.
func TestPrometheusIsStrictAndTagsFilterStats(t *testing.T) {
	defs := append(ServerDefs(), ClusterDefs("backend")...)
	defs = append(defs, ClusterDefs(`we"ird\name`)...)
	defs = append(defs, ListenerDefs("127.0.0.1:8080")...)
	defs = append(defs, ListenerDefs("[::1]:8080")...)
	defs = append(defs, HTTPDefs("ingress")...)
	for _, p := range []string{"db", "cache"} {
		defs = append(defs, Def{Name: "tcp." + p + ".downstream_cx_total", Kind: KindCounter},
			Def{Name: "http_local_rate_limit." + p + ".rate_limited", Kind: KindCounter},
			Def{Name: "local_rate_limit." + p + ".rate_limited", Kind: KindCounter})
	}
	defs = append(defs, Def{Name: "http.ingress.ext_authz.denied", Kind: KindCounter},
		Def{Name: "http.egress.ext_authz.denied", Kind: KindCounter},
		Def{Name: "server.health_check_failed", Kind: KindGauge})
	s, err := NewSchema(defs)
	if err != nil {
		t.Fatal(err)
	}
	r := makeRegion(t, s, 2)
	r.Slab(0).Counter("tcp.db.downstream_cx_total").Add(3)
	r.Slab(1).Counter("tcp.cache.downstream_cx_total").Add(5)
	r.Slab(0).Counter("http.egress.ext_authz.denied").Inc()
	r.Slab(1).Cluster("backend").UpstreamRqTime.Record(3 * time.Millisecond)
	var b bytes.Buffer
	if err := WritePrometheus(&b, r.Snapshot()); err != nil {
		t.Fatal(err)
	}
	fams, err := testutil.ParsePrometheusText(b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for _, want := range []struct {
		fam, label, value string
		v                 float64
	}{
		{"sluice_tcp_downstream_cx_total", "tcp_prefix", "db", 3},
		{"sluice_tcp_downstream_cx_total", "tcp_prefix", "cache", 5},
		{"sluice_http_ext_authz_denied", "http_conn_manager_prefix", "egress", 1},
		{"sluice_http_ext_authz_denied", "http_conn_manager_prefix", "ingress", 0},
		{"sluice_http_local_rate_limit_rate_limited", "local_http_ratelimit_prefix", "db", 0},
		{"sluice_local_rate_limit_rate_limited", "local_network_ratelimit_prefix", "cache", 0},
		{"sluice_cluster_upstream_rq_total", "cluster_name", `we"ird\name`, 0},
		{"sluice_listener_downstream_cx_total", "listener_address", "[__1]_8080", 0},
	} {
		found := false
		for _, s := range fams[want.fam] {
			if s.Labels[want.label] == want.value && len(s.Labels) == 1 {
				found = s.Value == want.v
			}
		}
		if !found {
			t.Errorf("no %s{%s=%q} %v in\n%s", want.fam, want.label, want.value, want.v, b.String())
		}
	}
	if f := fams["sluice_server_health_check_failed"]; len(f) != 1 || len(f[0].Labels) != 0 {
		t.Errorf("server.health_check_failed: %v", f)
	}
	for fam := range fams {
		if strings.Contains(fam, "_db_") || strings.Contains(fam, "_cache_") || strings.Contains(fam, "_egress_") {
			t.Errorf("family %s carries a stat_prefix in its name", fam)
		}
	}
}
