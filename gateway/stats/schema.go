package stats

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
)

// Kind is the type of a stat.
type Kind uint8

// The three kinds of stats.
const (
	// KindCounter only goes up.
	KindCounter Kind = iota + 1
	// KindGauge goes up and down; it is recomputed from live writers.
	KindGauge
	// KindHistogram records durations in fixed log-linear buckets.
	KindHistogram
)

// String returns "counter", "gauge" or "histogram".
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "unknown"
}

// Label is one Prometheus label extracted from a stat name.
type Label struct {
	Name  string `json:"n"`
	Value string `json:"v"`
}

// Def declares one stat: its Envoy-style dotted name, its kind, and how it is
// exported to Prometheus (Family plus Labels; Family empty means the name
// with '.' and other invalid characters replaced by '_').
//
// Max marks a gauge that every worker sets to the same process-independent
// value (a cluster's membership, which each worker holds whole): it is
// aggregated as the largest value over the writers, not their sum, which
// would multiply it by the number of workers (and generations draining).
type Def struct {
	Name   string  `json:"name"`
	Kind   Kind    `json:"kind"`
	Family string  `json:"family,omitempty"`
	Labels []Label `json:"labels,omitempty"`
	Max    bool    `json:"max,omitempty"`
}

// Schema is an immutable, ordered set of stat definitions. Counters, gauges
// and histograms are each indexed from 0 in name order; the index is the
// stat's slot in a slab. A Schema is safe for concurrent use.
type Schema struct {
	defs  []Def // counters, then gauges, then histograms; each sorted by name
	nc    int
	ng    int
	nh    int
	index map[string]int // name -> position in defs
	hash  uint64
}

// NewSchema builds a schema from defs. Order does not matter: the result is
// sorted, so equal sets give equal schemas. A name declared twice with the
// same kind is kept once; with different kinds it is an error.
func NewSchema(defs []Def) (*Schema, error) {
	seen := make(map[string]Def, len(defs))
	for _, d := range defs {
		if d.Name == "" {
			return nil, fmt.Errorf("stats: empty stat name")
		}
		if d.Kind < KindCounter || d.Kind > KindHistogram {
			return nil, fmt.Errorf("stats: stat %q: invalid kind %d", d.Name, d.Kind)
		}
		if old, ok := seen[d.Name]; ok {
			if old.Kind != d.Kind {
				return nil, fmt.Errorf("stats: stat %q declared as %s and %s", d.Name, old.Kind, d.Kind)
			}
			continue
		}
		seen[d.Name] = d
	}
	all := make([]Def, 0, len(seen))
	for _, d := range seen {
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Kind != all[j].Kind {
			return all[i].Kind < all[j].Kind
		}
		return all[i].Name < all[j].Name
	})
	s := &Schema{defs: all, index: make(map[string]int, len(all))}
	for i, d := range all {
		s.index[d.Name] = i
		switch d.Kind {
		case KindCounter:
			s.nc++
		case KindGauge:
			s.ng++
		case KindHistogram:
			s.nh++
		}
	}
	h := fnv.New64a()
	b, _ := s.MarshalJSON()
	h.Write(b)
	s.hash = h.Sum64()
	return s, nil
}

// Defs returns the definitions in slot order: counters, gauges, histograms.
// The caller must not modify the result.
func (s *Schema) Defs() []Def { return s.defs }

// Len returns the number of counters, gauges and histograms.
func (s *Schema) Len() (counters, gauges, histograms int) { return s.nc, s.ng, s.nh }

// Hash identifies the schema: equal schemas have equal hashes.
func (s *Schema) Hash() uint64 { return s.hash }

// Lookup returns the kind and slot index of the named stat.
func (s *Schema) Lookup(name string) (Kind, int, bool) {
	i, ok := s.index[name]
	if !ok {
		return 0, 0, false
	}
	switch k := s.defs[i].Kind; k {
	case KindCounter:
		return k, i, true
	case KindGauge:
		return k, i - s.nc, true
	default:
		return k, i - s.nc - s.ng, true
	}
}

// MarshalJSON encodes the definitions, in slot order.
func (s *Schema) MarshalJSON() ([]byte, error) { return json.Marshal(s.defs) }

func unmarshalSchema(b []byte) (*Schema, error) {
	var defs []Def
	if err := json.Unmarshal(b, &defs); err != nil {
		return nil, fmt.Errorf("stats: decoding schema: %w", err)
	}
	return NewSchema(defs)
}

// tagScopes are Envoy's default tag extractors for the scopes of stats
// declared without a Family (filters' stats): "<scope><prefix>.<rest>" is
// exported as the family <scope>_<rest> with the label <label>="<prefix>",
// as Envoy exports tcp.db.idle_timeout as
// envoy_tcp_idle_timeout{envoy_tcp_prefix="db"}, so that one family holds
// every stat_prefix's series.
var tagScopes = []struct{ scope, label string }{
	{"tcp.", "tcp_prefix"},
	{"http.", "http_conn_manager_prefix"},
	{"http_local_rate_limit.", "local_http_ratelimit_prefix"},
	{"local_rate_limit.", "local_network_ratelimit_prefix"},
}

// prom returns the Prometheus metric family of d, without the "sluice_"
// prefix, and its labels: Family and Labels when set, else the family and
// label of the stat's tag scope (tagScopes), else the name with '.' and
// other invalid characters replaced by '_' and no label.
func (d *Def) prom() (string, []Label) {
	if d.Family != "" {
		return d.Family, d.Labels
	}
	for _, ts := range tagScopes {
		rest, ok := strings.CutPrefix(d.Name, ts.scope)
		if !ok {
			continue
		}
		prefix, suffix, ok := strings.Cut(rest, ".")
		if !ok || prefix == "" || suffix == "" {
			break
		}
		labels := append(d.Labels[:len(d.Labels):len(d.Labels)], Label{Name: ts.label, Value: prefix})
		return sanitize(ts.scope[:len(ts.scope)-1] + "_" + suffix), labels
	}
	return sanitize(d.Name), d.Labels
}

// sanitize maps a dotted stat name onto the Prometheus name alphabet.
func sanitize(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= '0' && c <= '9' && i > 0:
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
