package compressor

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestAcceptEncoding(t *testing.T) {
	for _, tc := range []struct {
		fields []string
		want   acceptance
	}{
		{nil, acceptNone},
		{[]string{"gzip"}, acceptGzip},
		{[]string{"GZIP;q=0.5"}, acceptGzip},
		{[]string{"x-gzip"}, acceptGzip},
		{[]string{"br, deflate"}, acceptIdentity},
		{[]string{"gzip;q=0"}, acceptIdentity},
		{[]string{"gzip;q=0, *"}, acceptIdentity}, // gzip named: "*" does not override it
		{[]string{"*"}, acceptWildcard},
		{[]string{"*;q=0"}, acceptIdentity},
		{[]string{"gzip;q=0.5, identity"}, acceptIdentity},
		{[]string{"gzip, identity;q=0.5"}, acceptGzip},
		{[]string{"br", "gzip"}, acceptGzip}, // fields combine
		{[]string{"gzip;q=2"}, acceptInvalid},
		{[]string{"gzip;q=NaN"}, acceptInvalid},
		{[]string{"gzip;q=1.5"}, acceptInvalid},
		{[]string{"gzip;q=0.001, identity;q=0"}, acceptGzip},
		{[]string{"gzip;level=3"}, acceptInvalid},
		{[]string{""}, acceptIdentity},
	} {
		p := newAcceptParser()
		for _, f := range tc.fields {
			p.add([]byte(f))
		}
		if got := p.result(); got != tc.want {
			t.Errorf("Accept-Encoding %q: %d, want %d", tc.fields, got, tc.want)
		}
	}
}

func TestResponseChecks(t *testing.T) {
	fa, err := (&Config{}).Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	f := fa.(*Factory).NewFilter(nil).(*filter)
	for _, tc := range []struct {
		name   string
		fields []string
		want   bool
	}{
		{"listed type with charset", []string{"content-type", "text/html; charset=utf-8"}, true},
		{"type case", []string{"content-type", "Application/JSON"}, true},
		{"unlisted type", []string{"content-type", "image/png"}, false},
		{"no type", nil, false},
		{"encoded", []string{"content-type", "text/html", "content-encoding", "br"}, false},
		{"identity coding", []string{"content-type", "text/html", "content-encoding", "identity"}, true},
		{"no-transform", []string{"content-type", "text/html", "cache-control", "max-age=3, No-Transform"}, false},
	} {
		h := &httpfilter.ResponseHeaders{Status: 200}
		for i := 0; i+1 < len(tc.fields); i += 2 {
			h.Add(tc.fields[i], tc.fields[i+1])
		}
		if got := f.compressible(h); got != tc.want {
			t.Errorf("%s: compressible %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	neg := -1
	for _, tc := range []struct {
		c   Config
		key string
	}{
		{Config{CompressionLevel: "11"}, "compression_level"},
		{Config{CompressionLevel: "fast"}, "compression_level"},
		{Config{MinContentLength: &neg}, "min_content_length"},
		{Config{ContentType: []string{"text"}}, "content_type[0]"},
		{Config{Name: "a.b"}, "name"},
	} {
		_, err := tc.c.Build(&registry.BuildContext{})
		fe, ok := err.(*registry.FieldError)
		if !ok || fe.Key != tc.key {
			t.Errorf("%+v: error %v, want one naming %s", tc.c, err, tc.key)
		}
	}
}

// TestDecisionsDoNotAllocate checks that reading Accept-Encoding and a
// response's fields, which the filter does for every request, allocates
// nothing.
func TestDecisionsDoNotAllocate(t *testing.T) {
	fa, err := (&Config{}).Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	f := fa.(*Factory).NewFilter(nil).(*filter)
	accept := []byte("br;q=1.0, gzip;q=0.8, deflate, *;q=0.1, identity;q=0.5")
	h := &httpfilter.ResponseHeaders{Status: 200}
	h.Add("content-type", "text/html; charset=utf-8")
	h.Add("cache-control", "public, max-age=60")
	var got acceptance
	n := testing.AllocsPerRun(100, func() {
		p := newAcceptParser()
		p.add(accept)
		got = p.result()
		if !f.compressible(h) {
			t.Fatal("text/html not compressible")
		}
	})
	if got != acceptGzip || n != 0 {
		t.Errorf("acceptance %d with %v allocations per request; want gzip (%d) with none", got, n, acceptGzip)
	}
}
