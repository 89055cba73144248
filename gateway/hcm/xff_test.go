package hcm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

func xffHeaders(values ...string) *httpfilter.Headers {
	var h httpfilter.Headers
	h.Add("host", "x")
	for _, v := range values {
		h.Add("x-forwarded-for", v)
	}
	h.Add("accept", "*/*")
	return &h
}

// TestXFFAddr checks Envoy's getLastAddressFromXFF: the entry skip from the
// right of the fields read as one list, trimmed, an address or nothing.
func TestXFFAddr(t *testing.T) {
	for _, tc := range []struct {
		values []string
		skip   int
		want   string // "" for not found
	}{
		{[]string{"192.0.2.1"}, 0, "192.0.2.1"},
		{[]string{"192.0.2.1, 203.0.113.9"}, 0, "203.0.113.9"},
		{[]string{"192.0.2.1, 203.0.113.9"}, 1, "192.0.2.1"},
		{[]string{"192.0.2.1, 203.0.113.9"}, 2, ""},
		{[]string{"192.0.2.1", "2001:db8::1 ,\t198.51.100.2"}, 1, "2001:db8::1"},
		{[]string{"192.0.2.1", "2001:db8::1, 198.51.100.2"}, 2, "192.0.2.1"},
		{[]string{"192.0.2.1,"}, 0, ""},
		{[]string{"unknown"}, 0, ""},
		{[]string{"192.0.2.1:80"}, 0, ""},
		{[]string{"fe80::1%eth0"}, 0, ""},
		{nil, 0, ""},
	} {
		a, ok := xffAddr(xffHeaders(tc.values...), tc.skip)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("xffAddr(%q, %d) = %q, want %q", tc.values, tc.skip, got, tc.want)
		}
	}
}

// xffSeeds are FuzzXFFAddr's seeds, also committed under testdata/fuzz.
var xffSeeds = map[string][]byte{
	"two":      []byte("192.0.2.1, 203.0.113.9"),
	"v6":       []byte("2001:db8::1,\t198.51.100.2"),
	"garbage":  []byte("unknown, ,,"),
	"zone":     []byte("fe80::1%eth0"),
	"trailing": []byte("192.0.2.1,"),
}

// TestWriteXFFCorpus keeps testdata/fuzz/FuzzXFFAddr in step with xffSeeds
// (SLUICE_WRITE_CORPUS=1 writes it).
func TestWriteXFFCorpus(t *testing.T) { fuzzcorpus.Sync(t, "FuzzXFFAddr", xffSeeds) }

// FuzzXFFAddr feeds client x-forwarded-for values: xffAddr must not panic,
// and what it finds for skip 0 and 1 is the last and the one-before-last
// comma-separated entry, parsed.
func FuzzXFFAddr(f *testing.F) {
	for _, s := range xffSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		parts := strings.Split(string(v), ",")
		for skip := range 3 {
			a, ok := xffAddr(xffHeaders(string(v)), skip)
			if skip >= len(parts) {
				if ok {
					t.Fatalf("xffAddr(%q, %d) = %v past the list", v, skip, a)
				}
				continue
			}
			e := strings.Trim(parts[len(parts)-1-skip], " \t")
			want, err := netip.ParseAddr(e)
			valid := err == nil && !strings.Contains(e, "%") && len(e) <= 45
			if ok != valid || ok && a != want {
				t.Fatalf("xffAddr(%q, %d) = %v, %v; want %v, %v", v, skip, a, ok, want, err)
			}
		}
	})
}
