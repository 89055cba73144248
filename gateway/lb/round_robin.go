package lb

import "sync/atomic"

// roundRobin picks hosts in turn. With equal weights it is strict rotation;
// otherwise every host comes up weight times per cycle of total weight,
// interleaved (a weighted round robin that needs no lock, where Envoy uses an
// EDF scheduler). Unhealthy hosts are skipped; hosts in slow start are
// skipped with probability 1 - their slow-start factor.
type roundRobin struct {
	common
	next atomic.Uint64
}

var _ Policy = (*roundRobin)(nil)

// Update implements Policy.
func (p *roundRobin) Update(h Hosts) { p.snap.Store(newSnapshot(h)) }

// Pick implements Policy.
func (p *roundRobin) Pick(*Request) int {
	s, all, ok := p.begin()
	if !ok {
		return -1
	}
	now := p.now()
	i := 0
	for range maxTries {
		i = s.sequential(p.next.Add(1) - 1)
		if p.accept(s, i, all, now) {
			return i
		}
	}
	return s.scan(i, all)
}
