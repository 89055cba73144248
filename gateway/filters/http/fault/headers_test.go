package fault

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

func TestParseHeaderValues(t *testing.T) {
	for _, tc := range []struct {
		v    string
		ok   bool
		want int
	}{{"200", true, 200}, {"503", true, 503}, {"599", true, 599}, {"199", false, 0}, {"600", false, 0},
		{"", false, 0}, {" 503", false, 0}, {"+503", false, 0}, {"5e2", false, 0}, {"0503", true, 503}, {"99999999999999", false, 0}} {
		if got, ok := parseHTTPStatus([]byte(tc.v)); ok != tc.ok || got != tc.want {
			t.Errorf("parseHTTPStatus(%q) = %d, %v; want %d, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		v    string
		ok   bool
		want int
	}{{"0", true, 0}, {"14", true, 14}, {"16", true, 16}, {"17", false, 0}, {"-1", false, 0}, {"x", false, 0}} {
		if got, ok := parseGRPCStatus([]byte(tc.v)); ok != tc.ok || got != tc.want {
			t.Errorf("parseGRPCStatus(%q) = %d, %v; want %d, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		v    string
		ok   bool
		want time.Duration
	}{{"1", true, time.Millisecond}, {"1500", true, 1500 * time.Millisecond}, {"0", false, 0},
		{"86400000", true, 24 * time.Hour}, {"86400001", false, 0}, {"1.5", false, 0}, {"999999999999", false, 0}} {
		if got, ok := parseDelay([]byte(tc.v)); ok != tc.ok || got != tc.want {
			t.Errorf("parseDelay(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		v    string
		ok   bool
		want int64
	}{{"1", true, 1}, {"64", true, 64}, {"0", false, 0}, {"1073741824", true, 1 << 30}, {"1073741825", false, 0}, {"8k", false, 0}} {
		if got, ok := parseKbps([]byte(tc.v)); ok != tc.ok || got != tc.want {
			t.Errorf("parseKbps(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		v    string
		ok   bool
		want percent
	}{{"0", true, 0}, {"100", true, 100}, {"50", true, 50}, {"12.5", true, 12.5}, {"100.0", true, 100},
		{"100.01", false, 0}, {"101", false, 0}, {".5", false, 0}, {"5.", false, 0}, {"1.2.3", false, 0},
		{"-1", false, 0}, {"NaN", false, 0}, {"inf", false, 0}, {"1e2", false, 0}, {"", false, 0}, {".", false, 0}} {
		if got, ok := parsePercent([]byte(tc.v)); ok != tc.ok || got != tc.want {
			t.Errorf("parsePercent(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

// seeds are the fuzz targets' committed seed corpus.
func seeds() map[string][]byte {
	return map[string][]byte{
		"status": []byte("503"), "zero": []byte("0"), "percent": []byte("12.5"), "hundred": []byte("100"),
		"dots": []byte("1..2"), "long": []byte(strings.Repeat("9", 20)), "sign": []byte("-5"), "space": []byte(" 1 "),
	}
}

func TestWriteCorpus(t *testing.T) { fuzzcorpus.Sync(t, "FuzzHeaderValues", seeds()) }

// FuzzHeaderValues feeds arbitrary bytes to the x-envoy-fault-* parsers:
// none may panic, and what they accept must be in range and agree with
// strconv on the plain decimal forms.
func FuzzHeaderValues(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if st, ok := parseHTTPStatus(v); ok != (err == nil && n >= 200 && n <= 599 && len(v) <= 12) || (ok && uint64(st) != n) {
			t.Fatalf("parseHTTPStatus(%q) = %d, %v", v, st, ok)
		}
		if g, ok := parseGRPCStatus(v); ok != (err == nil && n <= 16 && len(v) <= 12) || (ok && uint64(g) != n) {
			t.Fatalf("parseGRPCStatus(%q) = %d, %v", v, g, ok)
		}
		if d, ok := parseDelay(v); ok && (d < time.Millisecond || d > maxHeaderDelay || err != nil || d != time.Duration(n)*time.Millisecond) {
			t.Fatalf("parseDelay(%q) = %v", v, d)
		}
		if k, ok := parseKbps(v); ok != (err == nil && n >= 1 && n <= maxKbps && len(v) <= 12) || (ok && uint64(k) != n) {
			t.Fatalf("parseKbps(%q) = %d, %v", v, k, ok)
		}
		if p, ok := parsePercent(v); ok {
			f, ferr := strconv.ParseFloat(string(v), 64)
			if p < 0 || p > 100 || ferr != nil || float64(p) < f-1e-9 || float64(p) > f+1e-9 {
				t.Fatalf("parsePercent(%q) = %v (strconv %v, %v)", v, p, f, ferr)
			}
		}
	})
}
