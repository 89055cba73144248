package stats

import (
	"bufio"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"time"
)

// Select returns the stats whose name matches re (nil matches all) and, if
// usedOnly, that were ever written: the admin filter= and usedonly options.
func (s Snapshot) Select(re *regexp.Regexp, usedOnly bool) Snapshot {
	out := make(Snapshot, 0, len(s))
	for _, st := range s {
		if usedOnly && !st.Used {
			continue
		}
		if re != nil && !re.MatchString(st.Def.Name) {
			continue
		}
		out = append(out, st)
	}
	return out
}

// millis formats a duration in milliseconds, as Envoy reports histograms.
func millis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', -1, 64)
}

// WriteText writes the snapshot in Envoy's admin text form: one
// "name: value" line per counter and gauge, sorted by name, then one line
// per histogram:
//
//	cluster.a.upstream_rq_time: P50=1.05 P90=3.1 P99=12 P99.9=12 count=7 sum=25.4
//
// with quantiles and sum in milliseconds, or "No recorded values" when the
// histogram is empty.
func WriteText(w io.Writer, s Snapshot) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, st := range s {
		if st.Def.Kind == KindHistogram {
			continue
		}
		b = append(b[:0], st.Def.Name...)
		b = append(b, ": "...)
		if st.Def.Kind == KindCounter {
			b = strconv.AppendUint(b, st.Counter, 10)
		} else {
			b = strconv.AppendInt(b, st.Gauge, 10)
		}
		b = append(b, '\n')
		bw.Write(b)
	}
	for _, st := range s {
		if st.Def.Kind != KindHistogram {
			continue
		}
		b = append(b[:0], st.Def.Name...)
		b = append(b, ": "...)
		h := st.Histogram
		if h.Count == 0 {
			b = append(b, "No recorded values"...)
		} else {
			for i, q := range Quantiles {
				b = append(b, QuantileNames[i]...)
				b = append(b, '=')
				b = millis(b, h.Quantile(q))
				b = append(b, ' ')
			}
			b = append(b, "count="...)
			b = strconv.AppendUint(b, h.Count, 10)
			b = append(b, " sum="...)
			b = millis(b, h.Sum)
		}
		b = append(b, '\n')
		bw.Write(b)
	}
	return bw.Flush()
}

type jsonStat struct {
	Name      string             `json:"name"`
	Type      string             `json:"type"`
	Value     *int64             `json:"value,omitempty"`
	Count     *uint64            `json:"count,omitempty"`
	SumMs     *float64           `json:"sum_ms,omitempty"`
	Quantiles map[string]float64 `json:"quantiles_ms,omitempty"`
}

// WriteJSON writes the snapshot as
//
//	{"stats":[{"name":"…","type":"counter","value":N},
//	          {"name":"…","type":"histogram","count":N,"sum_ms":F,"quantiles_ms":{"P50":F,…}}]}
//
// sorted by name. Counters above 2^63-1 are clamped.
func WriteJSON(w io.Writer, s Snapshot) error {
	out := struct {
		Stats []jsonStat `json:"stats"`
	}{Stats: make([]jsonStat, 0, len(s))}
	for _, st := range s {
		js := jsonStat{Name: st.Def.Name, Type: st.Def.Kind.String()}
		switch st.Def.Kind {
		case KindCounter:
			v := int64(st.Counter)
			if st.Counter > 1<<63-1 {
				v = 1<<63 - 1
			}
			js.Value = &v
		case KindGauge:
			v := st.Gauge
			js.Value = &v
		case KindHistogram:
			h := st.Histogram
			c := h.Count
			sum := float64(h.Sum) / float64(time.Millisecond)
			js.Count, js.SumMs = &c, &sum
			if c > 0 {
				js.Quantiles = make(map[string]float64, len(Quantiles))
				for i, q := range Quantiles {
					js.Quantiles[QuantileNames[i]] = float64(h.Quantile(q)) / float64(time.Millisecond)
				}
			}
		}
		out.Stats = append(out.Stats, js)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
