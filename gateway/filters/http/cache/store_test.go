package cache

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

func testStats() storeStats {
	var s *stats.Slab
	return storeStats{insertions: s.Counter("i"), evictions: s.Counter("e"), invalidations: s.Counter("v"),
		entries: s.Gauge("n"), bytes: s.Gauge("b")}
}

func testEntry(base string, size int64) *entry {
	return &entry{base: base, size: size}
}

// TestStoreEvictsLeastRecentlyUsed fills the store past max_size_bytes:
// the least recently used entry goes, a looked-up one stays.
func TestStoreEvictsLeastRecentlyUsed(t *testing.T) {
	s := newStore(300, testStats())
	for _, k := range []string{"a", "b", "c"} {
		if !s.put(testEntry(k, 100), nil) {
			t.Fatalf("put %s refused", k)
		}
	}
	if s.lookup([]byte("a"), &httpfilter.Headers{}) == nil {
		t.Fatal("a missing")
	}
	s.put(testEntry("d", 100), nil) // evicts b, the least recently used
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := s.lookup([]byte(k), &httpfilter.Headers{}) != nil; got != want {
			t.Errorf("%s stored: %v, want %v", k, got, want)
		}
	}
	if n, size := s.usage(); n != 3 || size != 300 {
		t.Errorf("usage %d entries %d bytes, want 3, 300", n, size)
	}
	if s.st.evictions.Value() != 1 {
		t.Errorf("evictions %d, want 1", s.st.evictions.Value())
	}
	if s.put(testEntry("huge", 301), nil) {
		t.Error("an entry larger than the store was stored")
	}
	s.put(testEntry("a", 250), nil) // replaces a, evicts the rest
	if n, size := s.usage(); n != 1 || size != 250 {
		t.Errorf("after replacing: %d entries %d bytes, want 1, 250", n, size)
	}
}

// TestStoreVariants stores two Vary variants of a URL, finds each by its
// request values, and drops both on invalidation.
func TestStoreVariants(t *testing.T) {
	s := newStore(1<<20, testStats())
	vary := []string{"accept-encoding"}
	var gz, plain httpfilter.Headers
	gz.Add("accept-encoding", "gzip")
	plain.Add("x", "y")
	s.put(&entry{base: "u", variant: string(appendVariant(nil, vary, &gz)), size: 10, status: 1}, vary)
	s.put(&entry{base: "u", variant: string(appendVariant(nil, vary, &plain)), size: 10, status: 2}, vary)
	if e := s.lookup([]byte("u"), &gz); e == nil || e.status != 1 {
		t.Errorf("gzip variant: %+v", e)
	}
	if e := s.lookup([]byte("u"), &plain); e == nil || e.status != 2 {
		t.Errorf("plain variant: %+v", e)
	}
	// A response with other Vary names supersedes the variants.
	s.put(&entry{base: "u", size: 10, status: 3}, nil)
	if n, _ := s.usage(); n != 1 {
		t.Errorf("after a Vary change: %d entries, want 1", n)
	}
	s.invalidate([]byte("u"))
	if n, size := s.usage(); n != 0 || size != 0 || s.lookup([]byte("u"), &plain) != nil {
		t.Errorf("after invalidation: %d entries %d bytes", n, size)
	}
}
