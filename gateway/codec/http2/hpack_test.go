package http2

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// The header blocks the encoder writes decode, with x/net's HPACK decoder,
// to exactly the fields given: statuses in and out of the static table,
// names in and out of it, empty values and values whose length needs more
// than the 7-bit prefix, with a decoder whose dynamic table holds nothing.
func TestHeaderBlocksDecodeToTheFieldsGiven(t *testing.T) {
	long := strings.Repeat("v", 300)
	for _, tc := range []struct {
		status int
		fields [][2]string
	}{
		{200, nil},
		{204, [][2]string{{"content-length", "0"}}},
		{503, [][2]string{{"retry-after", "5"}, {"x-custom", ""}}},
		{101, [][2]string{{"date", "Tue, 24 Nov 2026 10:00:00 GMT"}}},
		{404, [][2]string{{"x-long", long}, {strings.Repeat("n", 200), long}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}}},
		{999, [][2]string{{"server", "sluice"}}},
		{1000, nil}, // more digits than a status has: AppendInt
	} {
		b := appendStatus(nil, tc.status)
		for _, f := range tc.fields {
			b = appendField(b, f[0], f[1])
		}
		var got []hpack.HeaderField
		d := hpack.NewDecoder(0, func(f hpack.HeaderField) { got = append(got, f) })
		if _, err := d.Write(b); err != nil {
			t.Fatalf("status %d: decoding %x: %v", tc.status, b, err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("status %d: %v", tc.status, err)
		}
		want := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(tc.status)}}
		for _, f := range tc.fields {
			want = append(want, hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if len(got) != len(want) {
			t.Fatalf("status %d: decoded %v, want %v", tc.status, got, want)
		}
		for i := range want {
			if got[i].Name != want[i].Name || got[i].Value != want[i].Value || got[i].Sensitive {
				t.Errorf("status %d: field %d is %+v, want %+v", tc.status, i, got[i], want[i])
			}
		}
	}
}

// BenchmarkEncodeHead is the encoding of a response head as the benchmark
// origin's reaches the codec through the router.
func BenchmarkEncodeHead(b *testing.B) {
	var h httpfilter.Headers
	h.Add("content-type", "text/plain")
	h.Add("content-length", "64")
	h.Add("date", "Tue, 24 Nov 2026 07:32:14 GMT")
	h.Add("server", "nginx/1.22.1")
	h.Add("x-envoy-upstream-service-time", "0")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		p := appendStatus(buf[:0], 200)
		for i := range h.Fields {
			f := &h.Fields[i]
			if !ConnectionSpecific(f.Name) {
				p = appendField(p, f.Name, f.Value)
			}
		}
		buf = p
	}
}

// BenchmarkEncodeLiteralStatus is a status the static table lacks (302):
// a literal field whose value is the code's digits.
func BenchmarkEncodeLiteralStatus(b *testing.B) {
	buf := make([]byte, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendStatus(buf[:0], 302)
	}
}
