package hcm

import (
	"bytes"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// TestStripHostPort checks Envoy's stripPortFromHost cases.
func TestStripHostPort(t *testing.T) {
	for _, tc := range []struct {
		method, in string
		mode       uint8
		want       string
	}{
		{"GET", "example.com:8080", stripMatching, "example.com"},
		{"GET", "example.com:8081", stripMatching, "example.com:8081"},
		{"GET", "example.com:8081", stripAny, "example.com"},
		{"GET", "example.com", stripAny, "example.com"},
		{"GET", "example.com:", stripAny, "example.com:"},
		{"GET", "example.com:http", stripAny, "example.com:http"},
		{"GET", "example.com:99999", stripAny, "example.com:99999"},
		{"GET", "[::1]:8080", stripMatching, "[::1]"},
		{"GET", "[::1]", stripAny, "[::1]"},
		{"GET", "[::1:8080]", stripAny, "[::1:8080]"},
		{"CONNECT", "example.com:8080", stripAny, "example.com:8080"},
	} {
		h := httpfilter.RequestHeaders{Method: []byte(tc.method), Authority: []byte(tc.in)}
		stripHostPort(&h, tc.mode, 8080)
		if string(h.Authority) != tc.want {
			t.Errorf("%s %q mode %d: %q, want %q", tc.method, tc.in, tc.mode, h.Authority, tc.want)
		}
	}
}

var hostSeeds = map[string][]byte{
	"port": []byte("example.com:8080"),
	"v6":   []byte("[::1]:443"),
	"bare": []byte("[fe80::1]"),
	"junk": []byte(":::]:"),
}

// TestWriteHostPortCorpus keeps testdata/fuzz/FuzzStripHostPort in step
// with hostSeeds (SLUICE_WRITE_CORPUS=1 writes it).
func TestWriteHostPortCorpus(t *testing.T) { fuzzcorpus.Sync(t, "FuzzStripHostPort", hostSeeds) }

// FuzzStripHostPort feeds client authorities: stripping must not panic,
// leaves a prefix of the authority, and removes only a ':' and digits.
func FuzzStripHostPort(f *testing.F) {
	for _, s := range hostSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, a []byte) {
		h := httpfilter.RequestHeaders{Method: []byte("GET"), Authority: a}
		stripHostPort(&h, stripAny, 443)
		if !bytes.HasPrefix(a, h.Authority) {
			t.Fatalf("%q became %q", a, h.Authority)
		}
		if cut := a[len(h.Authority):]; len(cut) > 0 && (cut[0] != ':' || len(cut) < 2 || len(bytes.Trim(cut[1:], "0123456789")) != 0) {
			t.Fatalf("%q lost %q", a, cut)
		}
	})
}
