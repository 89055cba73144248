package testutil

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// PromSample is one sample line of a Prometheus text exposition.
type PromSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

var (
	promMetricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	promLabelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// ParsePrometheusText checks text strictly against the Prometheus text
// exposition format 0.0.4 and returns its samples by family. It reports
// the first violation of: valid metric and label names (no reserved
// "__" labels), label values with only the \\, \" and \n escapes, one
// TYPE line per family before its samples, each family's lines
// contiguous, sample names matching the family's type (a histogram's
// _bucket, _sum and _count), no duplicate series, and for each histogram
// series ascending le bounds ending in +Inf, non-decreasing bucket counts,
// and a +Inf bucket equal to _count.
func ParsePrometheusText(text string) (map[string][]PromSample, error) {
	types := map[string]string{}
	done := map[string]bool{} // families whose lines have ended
	series := map[string]bool{}
	out := map[string][]PromSample{}
	cur := ""
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		where := fmt.Sprintf("line %d %q", n+1, line)
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) < 3 || (f[1] != "TYPE" && f[1] != "HELP") {
				continue // a comment
			}
			fam := f[2]
			if !promMetricName.MatchString(fam) {
				return nil, fmt.Errorf("%s: invalid metric name", where)
			}
			if f[1] == "HELP" {
				continue
			}
			if len(f) != 4 {
				return nil, fmt.Errorf("%s: malformed TYPE line", where)
			}
			switch f[3] {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				return nil, fmt.Errorf("%s: unknown type", where)
			}
			if _, ok := types[fam]; ok || len(out[fam]) > 0 {
				return nil, fmt.Errorf("%s: TYPE of %s repeated or after its samples", where, fam)
			}
			types[fam] = f[3]
			if cur != "" && cur != fam {
				done[cur] = true
			}
			cur = fam
			continue
		}
		if line == "" {
			return nil, fmt.Errorf("%s: empty line", where)
		}
		s, err := parsePromSample(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		fam := s.Name
		if t := types[cur]; t == "histogram" && (s.Name == cur+"_bucket" || s.Name == cur+"_sum" || s.Name == cur+"_count") {
			fam = cur
		}
		if types[fam] == "histogram" && fam == s.Name {
			return nil, fmt.Errorf("%s: a histogram's sample must be _bucket, _sum or _count", where)
		}
		if fam != cur {
			if cur != "" {
				done[cur] = true
			}
			cur = fam
		}
		if done[fam] {
			return nil, fmt.Errorf("%s: lines of %s are not contiguous", where, fam)
		}
		key := seriesKey(s.Name, s.Labels)
		if series[key] {
			return nil, fmt.Errorf("%s: duplicate series", where)
		}
		series[key] = true
		out[fam] = append(out[fam], s)
	}
	for fam, t := range types {
		if t == "histogram" {
			if err := checkHistogram(fam, out[fam]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func parsePromSample(line string) (PromSample, error) {
	s := PromSample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.Name = line[:i]
	if !promMetricName.MatchString(s.Name) {
		return s, fmt.Errorf("invalid metric name %q", s.Name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return s, fmt.Errorf("malformed label at %q", rest)
			}
			name := rest[:eq]
			if !promLabelName.MatchString(name) || strings.HasPrefix(name, "__") {
				return s, fmt.Errorf("invalid label name %q", name)
			}
			if _, dup := s.Labels[name]; dup {
				return s, fmt.Errorf("label %q repeated", name)
			}
			var v strings.Builder
			j := eq + 2
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\n' {
					return s, fmt.Errorf("raw newline in a label value")
				}
				if rest[j] != '\\' {
					v.WriteByte(rest[j])
					continue
				}
				j++
				if j == len(rest) {
					return s, fmt.Errorf("unterminated escape")
				}
				switch rest[j] {
				case '\\', '"':
					v.WriteByte(rest[j])
				case 'n':
					v.WriteByte('\n')
				default:
					return s, fmt.Errorf("invalid escape \\%c in a label value", rest[j])
				}
			}
			if j == len(rest) {
				return s, fmt.Errorf("unterminated label value")
			}
			s.Labels[name] = v.String()
			rest = rest[j+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("expected ',' or '}' at %q", rest)
			}
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return s, fmt.Errorf("no space before the value")
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("expected a value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil && f[0] != "+Inf" && f[0] != "-Inf" && f[0] != "NaN" {
		return s, fmt.Errorf("invalid value %q", f[0])
	}
	s.Value = v
	return s, nil
}

func seriesKey(name string, labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(name)
	for _, n := range names {
		fmt.Fprintf(&b, "\x00%s=%s", n, labels[n])
	}
	return b.String()
}

func checkHistogram(fam string, samples []PromSample) error {
	type hist struct {
		les    []float64
		counts []float64
		count  float64
		has    int
	}
	byKey := map[string]*hist{}
	get := func(labels map[string]string) *hist {
		l := map[string]string{}
		for k, v := range labels {
			if k != "le" {
				l[k] = v
			}
		}
		k := seriesKey("", l)
		if byKey[k] == nil {
			byKey[k] = &hist{}
		}
		return byKey[k]
	}
	for _, s := range samples {
		h := get(s.Labels)
		switch s.Name {
		case fam + "_bucket":
			le, ok := s.Labels["le"]
			if !ok {
				return fmt.Errorf("%s: a bucket without le", fam)
			}
			b, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return fmt.Errorf("%s: le %q: %w", fam, le, err)
			}
			h.les, h.counts = append(h.les, b), append(h.counts, s.Value)
		case fam + "_count":
			h.count, h.has = s.Value, h.has|1
		case fam + "_sum":
			h.has |= 2
		}
	}
	for k, h := range byKey {
		if h.has != 3 || len(h.les) == 0 {
			return fmt.Errorf("%s%s: a histogram needs buckets, _sum and _count", fam, k)
		}
		for i := 1; i < len(h.les); i++ {
			if h.les[i] <= h.les[i-1] || h.counts[i] < h.counts[i-1] {
				return fmt.Errorf("%s%s: buckets not ascending or counts decreasing at le=%v", fam, k, h.les[i])
			}
		}
		if last := len(h.les) - 1; !math.IsInf(h.les[last], 1) || h.counts[last] != h.count {
			return fmt.Errorf("%s%s: the last bucket must be le=\"+Inf\" with _count's value", fam, k)
		}
	}
	return nil
}
