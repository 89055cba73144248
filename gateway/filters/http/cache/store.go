package cache

import (
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// entryOverhead is what an entry costs beyond its header and body bytes,
// counted against max_size_bytes so that many tiny entries are bounded too.
const entryOverhead = 256

// entry is one stored response. Everything but the list links is
// immutable once the entry is in the store (a 304 refresh replaces the
// entry), so a stream may read an entry it looked up after the lock is
// released.
type entry struct {
	base    string // scheme, authority, path and query
	variant string // the Vary-selected request values, within base's group
	status  int
	fields  []httpfilter.Field // response header fields, without age
	body    []byte             // len == cap: appending to it copies
	size    int64

	// Freshness (RFC 9111 §4.2): the entry is fresh while its current
	// age, initialAge plus the time since stored, is below lifetime.
	lifetime   time.Duration
	initialAge time.Duration // corrected_initial_age
	stored     time.Time     // response_time

	noCache bool // must be revalidated on every use (no-cache)
	authOK  bool // may answer a request with Authorization (§3.5)
	etag    []byte
	lastMod []byte

	prev, next *entry // LRU list: front is most recently used
}

// age is the entry's current_age at now (RFC 9111 §4.2.3).
func (e *entry) age(now time.Time) time.Duration {
	return e.initialAge + now.Sub(e.stored)
}

// hasValidator reports whether the entry can be revalidated.
func (e *entry) hasValidator() bool { return len(e.etag) > 0 || len(e.lastMod) > 0 }

// group holds the stored variants of one URL: the Vary field names of
// the response last stored for it, and one entry per combination of the
// request values those name.
type group struct {
	vary     []string
	variants map[string]*entry
}

// storeStats are the store's stat handles.
type storeStats struct {
	insertions, evictions, invalidations *stats.Counter
	entries, bytes                       *stats.Gauge
}

// store is a worker's in-memory response store: LRU over entries, bounded
// by maxSize bytes. Its methods are safe for concurrent use.
type store struct {
	mu      sync.Mutex
	maxSize int64
	size    int64
	n       int
	groups  map[string]*group
	lru     entry // sentinel: lru.next is the most recent
	st      storeStats
}

func newStore(maxSize int64, st storeStats) *store {
	s := &store{maxSize: maxSize, groups: make(map[string]*group), st: st}
	s.lru.next, s.lru.prev = &s.lru, &s.lru
	return s
}

// put stores e (replacing an entry with its key), evicting least recently
// used entries until it fits. vary is the names it was selected by: a group whose names differ loses its
// other variants, since the new response supersedes them. An entry larger
// than the whole store is not stored.
func (s *store) put(e *entry, vary []string) bool {
	variant := e.variant
	if e.size > s.maxSize {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[e.base]
	if g != nil && !sameNames(g.vary, vary) {
		s.dropGroup(e.base, g)
		g = nil
	}
	if g == nil {
		g = &group{vary: vary, variants: make(map[string]*entry, 1)}
		s.groups[e.base] = g
	}
	if old := g.variants[variant]; old != nil {
		s.unlink(old)
		s.size -= old.size
		s.n--
	}
	g.variants[variant] = e
	s.pushFront(e)
	s.size += e.size
	s.n++
	s.st.insertions.Inc()
	for s.size > s.maxSize && s.lru.prev != e {
		s.evict(s.lru.prev)
	}
	s.gauges()
	return true
}

// refresh replaces old by e if old is still stored (a 304 updated it).
func (s *store) refresh(old, e *entry) {
	variant := old.variant
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[old.base]
	if g == nil || g.variants[variant] != old {
		return
	}
	s.unlink(old)
	s.size += e.size - old.size
	g.variants[variant] = e
	s.pushFront(e)
	for s.size > s.maxSize && s.lru.prev != e {
		s.evict(s.lru.prev)
	}
	s.gauges()
}

// invalidate drops every variant stored for base (RFC 9111 §4.4).
func (s *store) invalidate(base []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[string(base)]; g != nil {
		s.dropGroup(string(base), g)
		s.st.invalidations.Inc()
		s.gauges()
	}
}

func (s *store) dropGroup(base string, g *group) {
	for _, e := range g.variants {
		s.unlink(e)
		s.size -= e.size
		s.n--
	}
	delete(s.groups, base)
}

func (s *store) evict(e *entry) {
	g := s.groups[e.base]
	if g != nil {
		if g.variants[e.variant] == e {
			delete(g.variants, e.variant)
		}
		if len(g.variants) == 0 {
			delete(s.groups, e.base)
		}
	}
	s.unlink(e)
	s.size -= e.size
	s.n--
	s.st.evictions.Inc()
}

func (s *store) gauges() {
	s.st.entries.Set(int64(s.n))
	s.st.bytes.Set(s.size)
}

func (s *store) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next, e.next.prev = e.next, e.prev
		e.prev, e.next = nil, nil
	}
}

func (s *store) pushFront(e *entry) {
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

// usage returns the number of entries and bytes held.
func (s *store) usage() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.size
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// lookup returns the entry stored for the request with base key base and
// header fields h (which select among its Vary variants) and marks it
// used, or nil.
func (s *store) lookup(base []byte, h *httpfilter.Headers) *entry {
	var buf [128]byte
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[string(base)]
	if g == nil {
		return nil
	}
	e := g.variants[string(appendVariant(buf[:0], g.vary, h))]
	if e != nil {
		s.unlink(e)
		s.pushFront(e)
	}
	return e
}
