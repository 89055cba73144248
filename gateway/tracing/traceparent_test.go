package tracing

import (
	"bytes"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cases := []struct {
		in      string
		ok      bool
		sampled bool
	}{
		{"00-" + tid + "-" + sid + "-01", true, true},
		{"00-" + tid + "-" + sid + "-00", true, false},
		{"00-" + tid + "-" + sid + "-03", true, true}, // other flag bits ignored
		{"01-" + tid + "-" + sid + "-01-later", true, true},
		{"01-" + tid + "-" + sid + "-01", true, true},
		{"00-" + tid + "-" + sid + "-01-x", false, false}, // version 00 is exactly 55 bytes
		{"01-" + tid + "-" + sid + "-01x", false, false},
		{"ff-" + tid + "-" + sid + "-01", false, false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sid + "-01", false, false}, // uppercase
		{"00-00000000000000000000000000000000-" + sid + "-01", false, false},
		{"00-" + tid + "-0000000000000000-01", false, false},
		{"00-" + tid + "-" + sid + "-0g", false, false},
		{"00_" + tid + "-" + sid + "-01", false, false},
		{"00-" + tid[:31] + "-" + sid + "-01", false, false},
		{"", false, false},
	}
	for _, c := range cases {
		sc, ok := ParseTraceparent([]byte(c.in))
		if ok != c.ok || ok && sc.Sampled != c.sampled {
			t.Errorf("ParseTraceparent(%q) = %+v, %v; want ok %v sampled %v", c.in, sc, ok, c.ok, c.sampled)
		}
		if ok {
			if got := string(appendHex(nil, sc.TraceID[:])); got != tid {
				t.Errorf("%q: trace id %s", c.in, got)
			}
			if got := string(appendHex(nil, sc.SpanID[:])); got != sid {
				t.Errorf("%q: span id %s", c.in, got)
			}
		}
	}
}

func TestAppendTraceparentRoundTrips(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		sc := SpanContext{TraceID: newTraceID(), SpanID: newSpanID(), Sampled: sampled}
		b := AppendTraceparent(nil, sc)
		if len(b) != traceparentLen {
			t.Fatalf("traceparent %q has %d bytes", b, len(b))
		}
		got, ok := ParseTraceparent(b)
		if !ok || got != sc {
			t.Fatalf("ParseTraceparent(%q) = %+v, %v; want %+v", b, got, ok, sc)
		}
	}
}

// FuzzParseTraceparent checks that any input parses without panicking, and
// that what parses formats back to the same first 55 bytes (less the flag
// bits other than sampled, and with version 00).
func FuzzParseTraceparent(f *testing.F) {
	f.Add([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	f.Add([]byte("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"))
	f.Add([]byte("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, ok := ParseTraceparent(b)
		if !ok {
			return
		}
		out := AppendTraceparent(nil, sc)
		if !bytes.Equal(out[3:53], b[3:53]) {
			t.Fatalf("ParseTraceparent(%q) formats back as %q", b, out)
		}
		if again, ok := ParseTraceparent(out); !ok || again != sc {
			t.Fatalf("round trip of %q: %+v, %v", out, again, ok)
		}
	})
}
