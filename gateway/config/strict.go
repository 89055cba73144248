package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The TOML decoder reports unknown keys and type mismatches without array
// indices ("listener.filter_chain.filter.config.x"), so before decoding,
// strictChecker walks the parsed document beside the Go type it will be
// decoded into, with the same key-to-field rules as the decoder, and names
// the first offending key with its full path.

var (
	primitiveType     = reflect.TypeFor[toml.Primitive]()
	durationType      = reflect.TypeFor[time.Duration]()
	tomlUnmarshaler   = reflect.TypeFor[toml.Unmarshaler]()
	textUnmarshaler   = reflect.TypeFor[encoding.TextUnmarshaler]()
	maxSafeFloatInt   = int64(1<<53 - 1)
	maxSafeFloat32Int = int64(1<<24 - 1)
)

// strictError is an unknown key or wrong type found by checkStrict.
type strictError struct {
	key string
	msg string
}

func (e *strictError) Error() string { return e.key + ": " + e.msg }

// strictChecker checks parsed TOML values against Go types; keys are visited
// in document order, so the first error is the first in the file.
type strictChecker struct {
	lines map[string]int
	// free holds the paths, without indices, of values decoded into an
	// empty interface: the decoder does not mark the keys inside them as
	// decoded, and any key is valid there.
	free map[string]bool
}

// isFree reports whether key, as MetaData.Undecoded returns it, lies inside
// a value decoded into an empty interface.
func (c *strictChecker) isFree(key toml.Key) bool {
	for i := len(key) - 1; i > 0; i-- {
		if c.free[strings.Join(key[:i], ".")] {
			return true
		}
	}
	return false
}

// check reports the first key of raw (a value decoded by the TOML
// parser into map[string]any) that t has no field for or whose value cannot
// be decoded into t. toml.Primitive fields are not looked into.
func (c *strictChecker) check(raw any, t reflect.Type, path string) *strictError {
	if t == primitiveType {
		return nil
	}
	pt := reflect.PointerTo(t)
	if t.Implements(tomlUnmarshaler) || pt.Implements(tomlUnmarshaler) {
		return nil
	}
	if t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler) {
		return checkText(raw, t, path)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return c.check(raw, t.Elem(), path)
	case reflect.Interface:
		if t.NumMethod() > 0 {
			return &strictError{path, "unsupported type " + t.String()}
		}
		if c.free == nil {
			c.free = map[string]bool{}
		}
		c.free[stripIndices(path)] = true
		return nil
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return mismatch(path, "table", raw)
		}
		fields := structFields(t)
		for _, k := range c.keys(m, path) {
			f, ok := lookupField(fields, k)
			if !ok {
				return &strictError{joinKey(path, k), "unknown key"}
			}
			if err := c.check(m[k], f.typ, joinKey(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if k := t.Key().Kind(); k != reflect.String && k != reflect.Interface {
			return &strictError{path, "unsupported type " + t.String()}
		}
		m, ok := raw.(map[string]any)
		if !ok {
			return mismatch(path, "table", raw)
		}
		for _, k := range c.keys(m, path) {
			if err := c.check(m[k], t.Elem(), joinKey(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		v := reflect.ValueOf(raw)
		if v.Kind() != reflect.Slice {
			return mismatch(path, "array", raw)
		}
		if t.Kind() == reflect.Array && v.Len() != t.Len() {
			return &strictError{path, fmt.Sprintf("expected an array of %d elements, found %d", t.Len(), v.Len())}
		}
		for i := range v.Len() {
			if err := c.check(v.Index(i).Interface(), t.Elem(), indexKey(path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		if _, ok := raw.(string); !ok {
			return mismatch(path, "string", raw)
		}
		return nil
	case reflect.Bool:
		if _, ok := raw.(bool); !ok {
			return mismatch(path, "boolean", raw)
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return checkInt(raw, t, path)
	case reflect.Float32, reflect.Float64:
		switch v := raw.(type) {
		case float64:
			if t.Kind() == reflect.Float32 && math.Abs(v) > math.MaxFloat32 && !math.IsInf(v, 0) {
				return &strictError{path, "value out of range for float32"}
			}
			return nil
		case int64:
			lim := maxSafeFloatInt
			if t.Kind() == reflect.Float32 {
				lim = maxSafeFloat32Int
			}
			if v < -lim || v > lim {
				return &strictError{path, "integer cannot be represented exactly as a float"}
			}
			return nil
		}
		return mismatch(path, "float", raw)
	}
	return &strictError{path, "unsupported type " + t.String()}
}

// checkInt checks an integer (or, for time.Duration, a duration string).
func checkInt(raw any, t reflect.Type, path string) *strictError {
	if s, ok := raw.(string); ok && t == durationType {
		if _, err := time.ParseDuration(s); err != nil {
			return &strictError{path, fmt.Sprintf("invalid duration %q", s)}
		}
		return nil
	}
	n, ok := raw.(int64)
	if !ok {
		return mismatch(path, "integer", raw)
	}
	var lo, hi int64
	switch t.Kind() {
	case reflect.Int8:
		lo, hi = math.MinInt8, math.MaxInt8
	case reflect.Int16:
		lo, hi = math.MinInt16, math.MaxInt16
	case reflect.Int32:
		lo, hi = math.MinInt32, math.MaxInt32
	case reflect.Uint8:
		lo, hi = 0, math.MaxUint8
	case reflect.Uint16:
		lo, hi = 0, math.MaxUint16
	case reflect.Uint32:
		lo, hi = 0, math.MaxUint32
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		lo, hi = 0, math.MaxInt64
	default:
		lo, hi = math.MinInt64, math.MaxInt64
	}
	if n < lo || n > hi {
		return &strictError{path, fmt.Sprintf("%d is out of range for %s", n, t.Kind())}
	}
	return nil
}

// checkText checks a value decoded through encoding.TextUnmarshaler by
// converting it as the decoder does and unmarshalling it into a scratch
// value.
func checkText(raw any, t reflect.Type, path string) *strictError {
	var s string
	switch v := raw.(type) {
	case string:
		s = v
	case bool:
		s = fmt.Sprintf("%v", v)
	case int64:
		s = fmt.Sprintf("%d", v)
	case float64:
		s = fmt.Sprintf("%f", v)
	case encoding.TextMarshaler:
		b, err := v.MarshalText()
		if err != nil {
			return &strictError{path, err.Error()}
		}
		s = string(b)
	default:
		return mismatch(path, "string", raw)
	}
	var u encoding.TextUnmarshaler
	if t.Kind() == reflect.Pointer {
		u, _ = reflect.New(t.Elem()).Interface().(encoding.TextUnmarshaler)
	} else {
		u, _ = reflect.New(t).Interface().(encoding.TextUnmarshaler)
	}
	if u == nil {
		return nil
	}
	if err := u.UnmarshalText([]byte(s)); err != nil {
		return &strictError{path, fmt.Sprintf("invalid value %q: %v", s, err)}
	}
	return nil
}

// mismatch reports a value of the wrong TOML type.
func mismatch(path, want string, raw any) *strictError {
	return &strictError{path, fmt.Sprintf("expected %s, found %s", want, tomlType(raw))}
}

// tomlType names the TOML type of a parsed value.
func tomlType(raw any) string {
	switch raw.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case map[string]any:
		return "table"
	case []map[string]any, []any:
		return "array"
	}
	return fmt.Sprintf("%T", raw)
}

// field is a struct field the decoder can set.
type field struct {
	name   string
	tagged bool
	depth  int
	typ    reflect.Type
}

// structFields lists the decodable fields of t, embedded structs' fields
// promoted, as the TOML decoder sees them: a shallower field hides a deeper
// one of the same name, and at equal depth a tagged one wins.
func structFields(t reflect.Type) []field {
	var out []field
	seen := map[string]int{}
	var walk func(t reflect.Type, depth int, visited map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, visited map[reflect.Type]bool) {
		if visited[t] {
			return
		}
		visited[t] = true
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("toml")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, depth+1, visited)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			f := field{name: name, tagged: name != "", depth: depth, typ: ft}
			if f.name == "" {
				f.name = sf.Name
			}
			if j, ok := seen[f.name]; ok {
				old := out[j]
				if old.depth < f.depth || old.depth == f.depth && (old.tagged || !f.tagged) {
					continue
				}
				out[j] = f
				continue
			}
			seen[f.name] = len(out)
			out = append(out, f)
		}
	}
	walk(t, 0, map[reflect.Type]bool{})
	return out
}

// lookupField finds the field for key: an exact name, else the first
// case-insensitive match.
func lookupField(fields []field, key string) (field, bool) {
	var fold *field
	for i := range fields {
		if fields[i].name == key {
			return fields[i], true
		}
		if fold == nil && strings.EqualFold(fields[i].name, key) {
			fold = &fields[i]
		}
	}
	if fold != nil {
		return *fold, true
	}
	return field{}, false
}

// keys returns the keys of table m at path in document order.
func (c *strictChecker) keys(m map[string]any, path string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		li, lj := c.lines[joinKey(path, ks[i])], c.lines[joinKey(path, ks[j])]
		if li != lj {
			return li < lj
		}
		return ks[i] < ks[j]
	})
	return ks
}
