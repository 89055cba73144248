package tracing

import (
	"strconv"
	"unicode/utf8"
)

// The OTLP/HTTP JSON encoding of an ExportTraceServiceRequest
// (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): field
// names in lowerCamelCase, trace and span ids as hex strings, 64-bit
// integers as decimal strings, enums as integers.

// Span kinds, OTLP's SpanKind values.
const (
	kindServer = 2
	kindClient = 3
)

// statusError is OTLP's STATUS_CODE_ERROR.
const statusError = 2

// attr is one string-valued span attribute (Envoy's tags are strings).
type attr struct{ key, value string }

// spanData is a finished span on its way to the collector.
type spanData struct {
	traceID    TraceID
	spanID     SpanID
	parentID   SpanID // zero: a root span
	traceState string
	name       string
	kind       int
	start, end int64 // unix nanoseconds
	attrs      []attr
	err        bool
}

// appendExportRequest appends the JSON of one export request holding spans
// to dst.
func appendExportRequest(dst []byte, service string, spans []*spanData) []byte {
	dst = append(dst, `{"resourceSpans":[{"resource":{"attributes":[`...)
	dst = appendAttr(dst, "service.name", service)
	dst = append(dst, `]},"scopeSpans":[{"scope":{"name":"sluice"},"spans":[`...)
	for i, s := range spans {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendSpan(dst, s)
	}
	return append(dst, "]}]}]}"...)
}

func appendSpan(dst []byte, s *spanData) []byte {
	dst = append(dst, `{"traceId":"`...)
	dst = appendHex(dst, s.traceID[:])
	dst = append(dst, `","spanId":"`...)
	dst = appendHex(dst, s.spanID[:])
	dst = append(dst, '"')
	if s.parentID != (SpanID{}) {
		dst = append(dst, `,"parentSpanId":"`...)
		dst = appendHex(dst, s.parentID[:])
		dst = append(dst, '"')
	}
	if s.traceState != "" {
		dst = append(dst, `,"traceState":`...)
		dst = appendJSONString(dst, s.traceState)
	}
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, s.name)
	dst = append(dst, `,"kind":`...)
	dst = strconv.AppendInt(dst, int64(s.kind), 10)
	dst = append(dst, `,"startTimeUnixNano":"`...)
	dst = strconv.AppendInt(dst, s.start, 10)
	dst = append(dst, `","endTimeUnixNano":"`...)
	dst = strconv.AppendInt(dst, s.end, 10)
	dst = append(dst, `","attributes":[`...)
	for i, a := range s.attrs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendAttr(dst, a.key, a.value)
	}
	dst = append(dst, ']')
	if s.err {
		dst = append(dst, `,"status":{"code":`...)
		dst = strconv.AppendInt(dst, statusError, 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendAttr(dst []byte, key, value string) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendJSONString(dst, key)
	dst = append(dst, `,"value":{"stringValue":`...)
	dst = appendJSONString(dst, value)
	return append(dst, "}}"...)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
