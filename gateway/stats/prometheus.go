package stats

import (
	"bufio"
	"io"
	"sort"
	"strconv"
	"time"
)

// PrometheusBuckets are the histogram bucket bounds exported to Prometheus,
// in milliseconds (Envoy's defaults). A bucket counts the values in the
// internal buckets that end at or below its bound, so a value up to 12.5 %
// below a bound that is not an internal bucket boundary may be counted in
// the next bucket up.
var PrometheusBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// WritePrometheus writes the snapshot in the Prometheus text exposition
// format (version 0.0.4): one family per Def family, prefixed "sluice_",
// with a # TYPE line, the labels extracted from the name, and for
// histograms _bucket{le=…} (milliseconds), _sum (milliseconds) and _count.
func WritePrometheus(w io.Writer, s Snapshot) error {
	type series struct {
		fam    string
		labels []Label
		st     *Stat
	}
	sorted := make([]series, len(s))
	for i := range s {
		fam, labels := s[i].Def.prom()
		sorted[i] = series{Prefix + fam, labels, &s[i]}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].fam < sorted[j].fam })
	bw := bufio.NewWriter(w)
	var b []byte
	last := ""
	for _, se := range sorted {
		fam, labels, st := se.fam, se.labels, se.st
		if fam != last {
			last = fam
			b = append(b[:0], "# TYPE "...)
			b = append(b, fam...)
			b = append(b, ' ')
			b = append(b, st.Def.Kind.String()...)
			b = append(b, '\n')
			bw.Write(b)
		}
		switch st.Def.Kind {
		case KindCounter:
			b = promLine(b[:0], fam, "", labels, "", "")
			b = strconv.AppendUint(b, st.Counter, 10)
			bw.Write(append(b, '\n'))
		case KindGauge:
			b = promLine(b[:0], fam, "", labels, "", "")
			b = strconv.AppendInt(b, st.Gauge, 10)
			bw.Write(append(b, '\n'))
		case KindHistogram:
			h := st.Histogram
			var cum uint64
			next := 0
			for _, le := range PrometheusBuckets {
				bound := uint64(le * float64(time.Millisecond/time.Microsecond))
				for next < NumBuckets {
					if _, hi := bucketBounds(next); hi > bound {
						break
					}
					cum += h.Buckets[next]
					next++
				}
				b = promLine(b[:0], fam, "_bucket", labels, "le", strconv.FormatFloat(le, 'f', -1, 64))
				b = strconv.AppendUint(b, cum, 10)
				bw.Write(append(b, '\n'))
			}
			b = promLine(b[:0], fam, "_bucket", labels, "le", "+Inf")
			b = strconv.AppendUint(b, h.Count, 10)
			bw.Write(append(b, '\n'))
			b = promLine(b[:0], fam, "_sum", labels, "", "")
			b = strconv.AppendFloat(b, float64(h.Sum)/float64(time.Millisecond), 'g', -1, 64)
			bw.Write(append(b, '\n'))
			b = promLine(b[:0], fam, "_count", labels, "", "")
			b = strconv.AppendUint(b, h.Count, 10)
			bw.Write(append(b, '\n'))
		}
	}
	return bw.Flush()
}

// promLine appends "name{labels} " with an optional extra label.
func promLine(b []byte, fam, suffix string, labels []Label, extraName, extraValue string) []byte {
	b = append(b, fam...)
	b = append(b, suffix...)
	if len(labels) > 0 || extraName != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, l.Name, l.Value)
		}
		if extraName != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, extraName, extraValue)
		}
		b = append(b, '}')
	}
	return append(b, ' ')
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, sanitize(name)...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
