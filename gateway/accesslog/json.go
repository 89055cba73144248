package accesslog

import (
	"encoding/json"
	"fmt"
	"sort"
	"unicode/utf8"
)

// CompileJSON compiles Envoy's json_format: each key maps to a format
// string with the operators Compile accepts. A line is one JSON object with
// the keys in sorted order, then '\n'. A value that is a single numeric
// operator (%RESPONSE_CODE%, %BYTES_RECEIVED%, %BYTES_SENT%, %DURATION%) is
// written as a JSON number; everything else as a string, and a missing
// single-operator value as null.
func CompileJSON(fields map[string]string) (*Formatter, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty json_format", ErrFormat)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f := &Formatter{json: make([]jsonField, 0, len(keys))}
	for _, k := range keys {
		ops, err := parse(fields[k])
		if err != nil {
			return nil, fmt.Errorf("json_format %q: %w", k, err)
		}
		qk, _ := json.Marshal(k)
		f.json = append(f.json, jsonField{key: string(qk) + ":", ops: ops})
	}
	return f, nil
}

func (f *Formatter) formatJSON(dst []byte, rec *Record) []byte {
	dst = append(dst, '{')
	for i := range f.json {
		fl := &f.json[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, fl.key...)
		if len(fl.ops) == 1 && fl.ops[0].kind != opLiteral {
			o := &fl.ops[0]
			start := len(dst)
			dst = o.value(dst, rec)
			if len(dst) == start && o.kind != opLocalReplyBody {
				dst = append(dst, "null"...)
				continue
			}
			if o.kind.numeric() {
				continue
			}
			dst = quoteTail(dst, start, o.max)
			continue
		}
		start := len(dst)
		for j := range fl.ops {
			dst = fl.ops[j].append(dst, rec)
		}
		dst = quoteTail(dst, start, 0)
	}
	return append(dst, '}', '\n')
}

// quoteTail turns dst[start:] into a JSON string in place: it truncates the
// value to max bytes (if max > 0), replaces invalid UTF-8 with '?', escapes
// it and adds the quotes, without allocating beyond growing dst.
func quoteTail(dst []byte, start, max int) []byte {
	if max > 0 && len(dst)-start > max {
		dst = dst[:start+max]
	}
	v := dst[start:]
	extra := 2
	for i := 0; i < len(v); {
		c := v[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 {
				v[i] = '?'
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			extra++
		case c < 0x20:
			extra += 5
		}
		i++
	}
	old := len(dst)
	for n := 0; n < extra; n++ {
		dst = append(dst, 0)
	}
	// Rewrite backwards so nothing is overwritten before it is read.
	w := len(dst) - 1
	dst[w] = '"'
	w--
	for r := old - 1; r >= start; r-- {
		c := dst[r]
		switch {
		case c == '"' || c == '\\':
			dst[w], dst[w-1] = c, '\\'
			w -= 2
		case c == '\n':
			dst[w], dst[w-1] = 'n', '\\'
			w -= 2
		case c == '\r':
			dst[w], dst[w-1] = 'r', '\\'
			w -= 2
		case c == '\t':
			dst[w], dst[w-1] = 't', '\\'
			w -= 2
		case c < 0x20:
			const hex = "0123456789abcdef"
			dst[w], dst[w-1], dst[w-2], dst[w-3], dst[w-4], dst[w-5] = hex[c&0xf], hex[c>>4], '0', '0', 'u', '\\'
			w -= 6
		default:
			dst[w] = c
			w--
		}
	}
	dst[w] = '"'
	return dst
}
