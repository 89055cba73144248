package accesslog

import (
	"fmt"
	"strconv"
	"time"
)

// timeFormat is a compiled %START_TIME(…)% format: strftime's conversion
// specifications, as Envoy takes them, each turned into a Go layout of its
// own, so that text around them is never read as a layout.
type timeFormat []timePiece

// timePiece is one literal or one conversion.
type timePiece struct {
	kind   byte   // tLiteral, tLayout, tEpoch or tFrac
	s      string // the literal, or the Go layout
	digits int    // tFrac: digits of the fraction of the second
}

const (
	tLiteral byte = iota
	tLayout
	tEpoch
	tFrac
)

// strftime maps conversion characters onto Go layouts.
var strftime = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03",
	'M': "04", 'S': "05", 'p': "PM", 'b': "Jan", 'h': "Jan", 'B': "January", 'a': "Mon",
	'A': "Monday", 'z': "-0700", 'Z': "MST", 'j': "002", 'F': "2006-01-02", 'T': "15:04:05",
	'D': "01/02/06", 'R': "15:04", 'r': "03:04:05 PM",
}

// compileTime compiles a strftime format: %Y %y %m %d %e %H %I %M %S %p %b
// %h %B %a %A %z %Z %j %F %T %D %R %r, %s (seconds since the epoch), %f
// (nanoseconds, 9 digits) and %1f … %9f (that many digits of the fraction
// of the second), %% %n %t.
func compileTime(f string) (timeFormat, error) {
	var out timeFormat
	lit := func(s string) {
		if n := len(out); n > 0 && out[n-1].kind == tLiteral {
			out[n-1].s += s
			return
		}
		out = append(out, timePiece{kind: tLiteral, s: s})
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '%' {
			lit(string(c))
			continue
		}
		i++
		if i == len(f) {
			return nil, fmt.Errorf("%w: START_TIME format %q ends with '%%'", ErrFormat, f)
		}
		c = f[i]
		switch {
		case c == '%':
			lit("%")
		case c == 'n':
			lit("\n")
		case c == 't':
			lit("\t")
		case c == 's':
			out = append(out, timePiece{kind: tEpoch})
		case c == 'f':
			out = append(out, timePiece{kind: tFrac, digits: 9})
		case c >= '1' && c <= '9' && i+1 < len(f) && f[i+1] == 'f':
			out = append(out, timePiece{kind: tFrac, digits: int(c - '0')})
			i++
		default:
			layout, ok := strftime[c]
			if !ok {
				return nil, fmt.Errorf("%w: START_TIME format %q: unsupported conversion %%%c", ErrFormat, f, c)
			}
			out = append(out, timePiece{kind: tLayout, s: layout})
		}
	}
	return out, nil
}

// append appends t (UTC) in the format.
func (tf timeFormat) append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	for _, p := range tf {
		switch p.kind {
		case tLiteral:
			dst = append(dst, p.s...)
		case tLayout:
			dst = t.AppendFormat(dst, p.s)
		case tEpoch:
			dst = strconv.AppendInt(dst, t.Unix(), 10)
		case tFrac:
			ns := t.Nanosecond()
			for range 9 - p.digits {
				ns /= 10
			}
			start := len(dst)
			dst = strconv.AppendInt(dst, int64(ns), 10)
			if pad := p.digits - (len(dst) - start); pad > 0 {
				dst = append(dst, "000000000"[:pad]...)
				copy(dst[start+pad:], dst[start:len(dst)-pad])
				copy(dst[start:start+pad], "000000000")
			}
		}
	}
	return dst
}
