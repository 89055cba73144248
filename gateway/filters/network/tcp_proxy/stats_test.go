package tcpproxy

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

func TestStatsAreDeclaredAndRecordedInTheRegion(t *testing.T) {
	c := &Config{StatPrefix: "db"}
	schema, err := stats.NewSchema(c.StatDefs(""))
	if err != nil {
		t.Fatal(err)
	}
	region, err := stats.NewRegion(schema, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	st := newStats(region.Slab(0), "db")
	st.DownstreamCxTotal.Inc()
	st.DownstreamCxRxBytesTotal.Add(42)
	snap := region.Snapshot()
	for name, want := range map[string]uint64{
		"tcp.db.downstream_cx_total":          1,
		"tcp.db.downstream_cx_rx_bytes_total": 42,
		"tcp.db.idle_timeout":                 0,
	} {
		s, ok := snap.Get(name)
		if !ok || s.Counter != want {
			t.Errorf("%s = %+v (found %v), want %v", name, s, ok, want)
		}
	}
}
