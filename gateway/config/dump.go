package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Dump returns c as JSON in the config file's own terms, for the admin
// API's /config_dump: tables and keys named as in TOML (listener,
// filter_chain, http_filter, connect_timeout), each filter as its name and
// its decoded config, durations as strings, defaults applied. Unset
// (nil) tables, arrays and optional values are left out; the file's path
// and text are not included.
func (c *Config) Dump() ([]byte, error) {
	b, err := json.Marshal(dumpValue(reflect.ValueOf(c), 0))
	if err != nil {
		return nil, fmt.Errorf("config: dump: %w", err)
	}
	return b, nil
}

var (
	filterType           = reflect.TypeFor[Filter]()
	perFilterConfigsType = reflect.TypeFor[PerFilterConfigs]()
	textMarshaler        = reflect.TypeFor[encoding.TextMarshaler]()
)

// maxDumpDepth bounds the recursion, in case a decoded filter config
// points back into itself.
const maxDumpDepth = 64

// dumpValue turns v into what json.Marshal writes as the TOML it came
// from; nil means "leave out".
func dumpValue(v reflect.Value, depth int) any {
	if !v.IsValid() || depth > maxDumpDepth {
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return dumpValue(v.Elem(), depth+1)
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return nil
	}
	t := v.Type()
	switch {
	case t == primitiveType:
		return nil
	case t == filterType:
		f := v.Interface().(Filter)
		out := map[string]any{"name": f.Name}
		if f.Decoded != nil {
			if cfg := dumpValue(reflect.ValueOf(f.Decoded), depth+1); cfg != nil {
				out["config"] = cfg
			}
		}
		return out
	case t.Implements(textMarshaler), v.CanAddr() && reflect.PointerTo(t).Implements(textMarshaler):
		if !t.Implements(textMarshaler) {
			v = v.Addr()
		}
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil
		}
		return string(b)
	}
	switch v.Kind() {
	case reflect.Struct:
		out := map[string]any{}
		dumpStruct(v, out, depth)
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = dumpValue(v.Index(i), depth+1)
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[fmt.Sprint(it.Key().Interface())] = dumpValue(it.Value(), depth+1)
		}
		return out
	default:
		return v.Interface()
	}
}

// dumpStruct adds the exported fields of struct v to out under their TOML
// keys; an embedded struct without a key (HeaderMutations) adds its fields
// to the same table, as TOML decoding reads them.
func dumpStruct(v reflect.Value, out map[string]any, depth int) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if fv.Type() == perFilterConfigsType {
			// Each typed_per_filter_config table as its decoded config.
			pf := fv.Interface().(PerFilterConfigs)
			if len(pf.PerFilter) > 0 {
				m := make(map[string]any, len(pf.PerFilter))
				for _, e := range pf.PerFilter {
					m[e.Name] = dumpValue(reflect.ValueOf(e.Config), depth+1)
				}
				out["typed_per_filter_config"] = m
			}
			continue
		}
		if sf.Anonymous && name == "" && fv.Kind() == reflect.Struct {
			dumpStruct(fv, out, depth+1)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		if d := dumpValue(fv, depth+1); d != nil {
			out[name] = d
		}
	}
}
