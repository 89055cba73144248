package lb

import (
	"math"
	"math/rand/v2"
	"time"
)

// leastRequest draws choiceCount hosts at random, in proportion to weight,
// and picks the least loaded: with equal weights the one with the fewest
// requests in flight (Envoy's power of two choices); otherwise the one with
// the highest effective weight, weight / (active+1)^bias. Envoy uses an EDF
// scheduler over effective weights for the weighted case; comparing weighted
// draws gives the same preference without a lock.
type leastRequest struct {
	common
	choices int
	bias    float64
}

var _ Policy = (*leastRequest)(nil)

func newLeastRequest(c settings, cfg LeastRequestConfig) *leastRequest {
	p := &leastRequest{common: common{settings: c}, choices: DefaultChoiceCount, bias: DefaultActiveRequestBias}
	if cfg.ChoiceCount > 0 {
		p.choices = int(cfg.ChoiceCount)
	}
	if cfg.ActiveRequestBias != nil {
		p.bias = *cfg.ActiveRequestBias
	}
	return p
}

// Update implements Policy.
func (p *leastRequest) Update(h Hosts) { p.snap.Store(newSnapshot(h)) }

// Pick implements Policy.
func (p *leastRequest) Pick(*Request) int {
	s, all, ok := p.begin()
	if !ok {
		return -1
	}
	now := p.now()
	best := -1
	for range p.choices {
		i := p.draw(s, all, now)
		if i < 0 {
			return best
		}
		if best < 0 || p.better(s, i, best) {
			best = i
		}
	}
	return best
}

// draw returns an eligible host drawn in proportion to weight (times the
// slow-start factor), or -1.
func (p *leastRequest) draw(s *snapshot, all bool, now time.Time) int {
	i := 0
	for range maxTries {
		i = s.weightedRandom()
		if p.accept(s, i, all, now) {
			return i
		}
	}
	return s.scan(int(rand.Uint64N(uint64(s.n))), all)
}

// better reports whether host i is less loaded than host j.
func (p *leastRequest) better(s *snapshot, i, j int) bool {
	ai, aj := max(s.hosts.Active(i), 0), max(s.hosts.Active(j), 0)
	if s.equal {
		return ai < aj
	}
	wi, wj := float64(s.weightOf(i)), float64(s.weightOf(j))
	switch p.bias {
	case 0:
		return wi > wj
	case 1:
		return wi*float64(aj+1) > wj*float64(ai+1)
	}
	return wi/math.Pow(float64(ai+1), p.bias) > wj/math.Pow(float64(aj+1), p.bias)
}
