package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

// maxErrors bounds how many validation errors one load reports.
const maxErrors = 20

// Load reads, decodes, defaults and validates the config file at path. See
// Parse. It is safe to call concurrently.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, the contents of the file at path, strictly: a TOML
// syntax error, an unknown key (in the schema or in a filter's config
// table), a value of the wrong type or an unknown filter name is an *Error
// naming path, line and key path. Each Filter's config table is decoded into
// the type its registered name provides (Decoded) and its Path is set. Parse
// then applies defaults and validates the result. When validation finds
// several problems, the error joins one *Error per problem (errors.As finds
// the first). Documents whose keys nest deeper than MaxKeyDepth are
// rejected before decoding. The returned Config's Source is data itself, so
// data must not be modified afterwards. It is safe to call concurrently.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{Path: path, Source: data}
	idx := scanLines(data)
	if idx.tooDeep > 0 {
		return nil, &Error{File: path, Line: idx.tooDeep, Msg: fmt.Sprintf("keys nested deeper than %d levels", MaxKeyDepth)}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, c.tomlError(err)
	}
	c.lines = idx.lines
	sc := &strictChecker{lines: c.lines}
	if err := sc.check(raw, reflect.TypeFor[Config](), ""); err != nil {
		return nil, c.errorf(err.key, err.msg)
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, c.tomlError(err)
	}
	d := &filterDecoder{c: c, md: &md, sc: sc}
	if err := d.all(raw); err != nil {
		return nil, err
	}
	for _, k := range md.Undecoded() {
		if !sc.isFree(k) {
			return nil, c.errorf(c.indexedKey(strings.Join(k, ".")), "unknown key")
		}
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// lastKeyRE finds the key in the decoder's type errors.
var lastKeyRE = regexp.MustCompile(`last key "([^"]*)"`)

// tomlError converts an error of the TOML decoder into an *Error.
func (c *Config) tomlError(err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e := &Error{File: c.Path, Line: pe.Position.Line, Msg: pe.Message}
		if pe.LastKey != "" && c.lines != nil {
			e.Key = c.indexedKey(pe.LastKey)
		}
		return e
	}
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	e := &Error{File: c.Path, Msg: msg}
	if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		e.Key = c.indexedKey(m[1])
		e.Line = c.Line(e.Key)
		if i := strings.Index(msg, "): "); i >= 0 {
			e.Msg = msg[i+3:]
		}
	}
	return e
}

// indexedKey returns the first known key path (in document order) that
// reads key once array indices are dropped, or key itself.
func (c *Config) indexedKey(key string) string {
	best, bestLine := key, 0
	for p, l := range c.lines {
		if stripIndices(p) == key && (bestLine == 0 || l < bestLine || l == bestLine && p < best) {
			best, bestLine = p, l
		}
	}
	return best
}

// stripIndices drops the "[n]" parts of a key path.
func stripIndices(p string) string {
	if !strings.Contains(p, "[") {
		return p
	}
	var b strings.Builder
	depth := 0
	for i := range len(p) {
		switch ch := p[i]; {
		case ch == '[':
			depth++
		case ch == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// filterDecoder decodes filter config tables once their names are known.
type filterDecoder struct {
	c  *Config
	md *toml.MetaData
	sc *strictChecker
}

// all decodes every filter of every listener. raw is the parsed document.
func (d *filterDecoder) all(raw map[string]any) error {
	for i := range d.c.Listeners {
		l := &d.c.Listeners[i]
		lp := indexKey("listener", i)
		rl := rawElem(raw, "listener", i)
		for j := range l.ListenerFilters {
			err := d.decode(&l.ListenerFilters[j], registry.Listener,
				indexKey(lp+".listener_filter", j), rawElem(rl, "listener_filter", j))
			if err != nil {
				return err
			}
		}
		for j := range l.FilterChains {
			fc := &l.FilterChains[j]
			cp := indexKey(lp+".filter_chain", j)
			rc := rawElem(rl, "filter_chain", j)
			for k := range fc.Filters {
				err := d.decode(&fc.Filters[k], registry.Network,
					indexKey(cp+".filter", k), rawElem(rc, "filter", k))
				if err != nil {
					return err
				}
			}
		}
	}
	return d.perFilterAll(raw)
}

// perFilterAll decodes the typed_per_filter_config tables of every route
// table, virtual host and route.
func (d *filterDecoder) perFilterAll(raw map[string]any) error {
	for i := range d.c.RouteConfigs {
		rc := &d.c.RouteConfigs[i]
		rp := indexKey("route_config", i)
		rr := rawElem(raw, "route_config", i)
		if err := d.perFilter(&rc.PerFilterConfigs, rp, rr); err != nil {
			return err
		}
		for j := range rc.VirtualHosts {
			vh := &rc.VirtualHosts[j]
			vp := indexKey(rp+".virtual_host", j)
			rv := rawElem(rr, "virtual_host", j)
			if err := d.perFilter(&vh.PerFilterConfigs, vp, rv); err != nil {
				return err
			}
			for k := range vh.Routes {
				err := d.perFilter(&vh.Routes[k].PerFilterConfigs, indexKey(vp+".route", k), rawElem(rv, "route", k))
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// perFilter decodes the typed_per_filter_config tables of the table at
// path (raw is its parsed table) into pf.PerFilter: each key must name a
// registered HTTP filter with per-route settings, and its table is checked
// strictly, decoded into the filter's per-route config and validated.
func (d *filterDecoder) perFilter(pf *PerFilterConfigs, path string, raw map[string]any) error {
	if len(pf.TypedPerFilterConfig) == 0 {
		return nil
	}
	tp := path + ".typed_per_filter_config"
	rawTables, _ := raw["typed_per_filter_config"].(map[string]any)
	for _, name := range d.sc.keys(rawTables, tp) {
		// The line index knows the key by its bare text; errors quote it,
		// as a filter name has dots.
		linePath, keyPath := tp+"."+name, tp+"."+strconv.Quote(name)
		located := func(key, msg string) *Error {
			return &Error{File: d.c.Path, Line: d.c.Line(key), Key: keyPath + strings.TrimPrefix(key, linePath), Msg: msg}
		}
		info, ok := registry.Lookup(name)
		switch {
		case !ok || info.Kind != registry.HTTP:
			return located(linePath, unknownFilter(name, registry.HTTP, info))
		case info.NewPerRoute == nil:
			return located(linePath, fmt.Sprintf("filter %q has no per-route settings", name))
		}
		v := info.NewPerRoute()
		rv := reflect.ValueOf(v)
		if v == nil || rv.Kind() != reflect.Pointer || rv.IsNil() {
			return located(linePath, fmt.Sprintf("filter %q: NewPerRoute must return a non-nil pointer", name))
		}
		rawCfg := rawTables[name]
		if _, ok := rawCfg.(map[string]any); !ok {
			return located(linePath, fmt.Sprintf("expected table, found %s", tomlType(rawCfg)))
		}
		if err := d.sc.check(rawCfg, rv.Type(), linePath); err != nil {
			return located(err.key, err.msg)
		}
		if err := d.md.PrimitiveDecode(pf.TypedPerFilterConfig[name], v); err != nil {
			e := d.c.tomlError(err)
			e.Key, e.Line = keyPath, d.c.Line(linePath)
			return e
		}
		if err := v.Validate(); err != nil {
			return d.c.TableError(keyPath, err)
		}
		pf.PerFilter = append(pf.PerFilter, PerFilterConfig{Name: name, Config: v, Path: keyPath})
	}
	slices.SortFunc(pf.PerFilter, func(a, b PerFilterConfig) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// decode resolves f's name in the registry as a filter of kind k, decodes
// its config table (raw is the filter's parsed table) and recurses into
// nested filters.
func (d *filterDecoder) decode(f *Filter, k registry.Kind, path string, raw map[string]any) error {
	f.Path = path
	if f.Name == "" {
		return d.c.errorf(path+".name", "missing filter name")
	}
	info, ok := registry.Lookup(f.Name)
	if !ok || info.Kind != k {
		return d.c.errorf(path+".name", unknownFilter(f.Name, k, info))
	}
	v := info.New()
	rv := reflect.ValueOf(v)
	if v == nil || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return d.c.errorf(path+".name", fmt.Sprintf("filter %q: New must return a non-nil pointer", f.Name))
	}
	cp := path + ".config"
	rawCfg, hasCfg := raw["config"]
	if hasCfg && !reflect.ValueOf(f.Config).IsZero() {
		if err := d.sc.check(rawCfg, rv.Type(), cp); err != nil {
			return d.c.errorf(err.key, err.msg)
		}
		if err := d.md.PrimitiveDecode(f.Config, v); err != nil {
			e := d.c.tomlError(err)
			if e.Key == "" {
				e.Key, e.Line = cp, d.c.Line(cp)
			}
			return e
		}
	}
	f.Decoded = v
	n, ok := v.(NestedFilters)
	if !ok {
		return nil
	}
	nk, key, nested := n.Nested()
	rc, _ := rawCfg.(map[string]any)
	for i := range nested {
		err := d.decode(&nested[i], nk, indexKey(cp+"."+key, i), rawElem(rc, key, i))
		if err != nil {
			return err
		}
	}
	return nil
}

// unknownFilter explains why name is not a filter of kind k; info is the
// filter registered under name, if any.
func unknownFilter(name string, k registry.Kind, info *registry.Info) string {
	if info != nil {
		return fmt.Sprintf("%q is a filter of kind %s, not %s", name, info.Kind, k)
	}
	names := registry.Names(k)
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	return fmt.Sprintf("unknown %s filter %q (registered: %s)", k, name, list)
}

// rawElem returns element i of the array of tables under key in table m,
// or nil.
func rawElem(m map[string]any, key string, i int) map[string]any {
	switch a := m[key].(type) {
	case []map[string]any:
		if i < len(a) {
			return a[i]
		}
	case []any:
		if i < len(a) {
			t, _ := a[i].(map[string]any)
			return t
		}
	}
	return nil
}
