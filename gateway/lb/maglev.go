package lb

import (
	"cmp"
	"slices"
	"sync/atomic"
)

// maglev is Google's Maglev consistent hash as Envoy builds it: a lookup
// table of a prime size where each host fills slots along its own
// permutation (offset and skip from the xxHash64 of its address, seeds 0 and
// 1), taking turns in proportion to weight. A request goes to the host of
// slot hash mod size. An unhealthy host's requests go to the host of a slot
// chosen by rehashing, so other hosts keep theirs.
type maglev struct {
	settings
	size  uint64
	table atomic.Pointer[maglevTable]
}

// maglevTable is the lookup table of one Update.
type maglevTable struct {
	snap  *snapshot
	slots []int32
}

var _ Policy = (*maglev)(nil)

func newMaglev(c settings, cfg MaglevConfig) *maglev {
	p := &maglev{settings: c, size: DefaultMaglevTableSize}
	if cfg.TableSize > 0 {
		p.size = cfg.TableSize
	}
	return p
}

// maglevEntry is a host's state while the table is built.
type maglevEntry struct {
	host         int32
	address      string
	offset, skip uint64
	weight       float64 // normalised
	target       float64
	next         uint64
}

// Update implements Policy. It builds the table: O(size × hosts) at worst,
// O(size log size) in practice.
func (p *maglev) Update(h Hosts) {
	s := newSnapshot(h)
	t := &maglevTable{snap: s}
	if s.n > 0 {
		t.slots = p.build(s)
	}
	p.table.Store(t)
}

func (p *maglev) build(s *snapshot) []int32 {
	m := p.size
	entries := make([]maglevEntry, s.n)
	maxWeight := 0.0
	for i := range entries {
		addr := s.hosts.Address(i)
		w := float64(s.weightOf(i)) / float64(s.total)
		entries[i] = maglevEntry{
			host:    int32(i),
			address: addr,
			offset:  HashString(addr, 0) % m,
			skip:    HashString(addr, 1)%(m-1) + 1,
			weight:  w,
		}
		maxWeight = max(maxWeight, w)
	}
	// The fill order decides contested slots: order by address so the
	// table does not depend on the order hosts are listed in.
	slices.SortFunc(entries, func(a, b maglevEntry) int {
		return cmp.Or(cmp.Compare(a.address, b.address), cmp.Compare(a.host, b.host))
	})
	slots := make([]int32, m)
	for k := range slots {
		slots[k] = -1
	}
	filled := uint64(0)
	for iteration := 1.0; filled < m; iteration++ {
		for k := range entries {
			if filled == m {
				break
			}
			e := &entries[k]
			// A host of the largest weight takes a slot every round; one of
			// a third of it, every third round.
			if iteration*e.weight < e.target {
				continue
			}
			e.target += maxWeight
			c := (e.offset + e.skip*e.next) % m
			for slots[c] >= 0 {
				e.next++
				c = (e.offset + e.skip*e.next) % m
			}
			slots[c] = e.host
			e.next++
			filled++
		}
	}
	return slots
}

// Pick implements Policy.
func (p *maglev) Pick(req *Request) int {
	t := p.table.Load()
	if t == nil {
		return -1
	}
	all, ok := p.mode(t.snap)
	if !ok || len(t.slots) == 0 {
		return -1
	}
	h := requestHash(req)
	m := uint64(len(t.slots))
	i := int(t.slots[h%m])
	attempt := attemptOf(req)
	var d distinct
	tries := maxTries * (attempt + 1)
	for k := range tries {
		if (all || t.snap.hosts.Healthy(i)) && d.next(i, attempt) {
			return i
		}
		h = mix64(h + uint64(k))
		i = int(t.slots[h%m])
	}
	if j := d.last(); j >= 0 {
		return j
	}
	return t.snap.scan(i, all)
}
