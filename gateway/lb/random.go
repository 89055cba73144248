package lb

import "math/rand/v2"

// random picks a uniformly random healthy host. As in Envoy, it ignores
// weights and slow start.
type random struct {
	common
}

var _ Policy = (*random)(nil)

// Update implements Policy.
func (p *random) Update(h Hosts) { p.snap.Store(newSnapshot(h)) }

// Pick implements Policy.
func (p *random) Pick(*Request) int {
	s, all, ok := p.begin()
	if !ok {
		return -1
	}
	i := 0
	for range maxTries {
		i = int(rand.Uint64N(uint64(s.n)))
		if all || s.hosts.Healthy(i) {
			return i
		}
	}
	return s.scan(i, all)
}
