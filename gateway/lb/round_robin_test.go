package lb

import (
	"slices"
	"testing"
)

func TestRoundRobinRotatesEqualWeightsStrictly(t *testing.T) {
	p := mustNew(t, Config{}, newHosts(3))
	var got []int
	for range 7 {
		got = append(got, p.Pick(nil))
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0}; !slices.Equal(got, want) {
		t.Fatalf("picks = %v, want %v", got, want)
	}
}

func TestRoundRobinPicksInProportionToWeight(t *testing.T) {
	weights := []uint32{5, 3, 1, 1}
	p := mustNew(t, Config{Policy: RoundRobinPolicy}, weightedHosts(weights...))
	// Weighted round robin is exact over every cycle of total weight (10).
	got := counts(t, p, 4, 10000, nil)
	for i, w := range weights {
		if got[i] != int(w)*1000 {
			t.Errorf("host %d (weight %d): %d picks, want %d (%v)", i, w, got[i], w*1000, got)
		}
	}
	// And interleaved: the heaviest host never takes a whole cycle's share
	// in a row.
	run, longest, prev := 0, 0, -1
	for range 100 {
		i := p.Pick(nil)
		if i == prev {
			run++
		} else {
			run = 1
		}
		prev, longest = i, max(longest, run)
	}
	if longest >= 5 {
		t.Errorf("host repeated %d times in a row, want interleaving", longest)
	}
}

func TestRoundRobinSkipsUnhealthyHostWithoutDoublingItsNeighbour(t *testing.T) {
	h := newHosts(4)
	h.setHealthy(1, false)
	p := mustNew(t, Config{}, h)
	got := counts(t, p, 4, 3000, nil)
	if want := []int{1000, 0, 1000, 1000}; !slices.Equal(got, want) {
		t.Fatalf("picks = %v, want %v", got, want)
	}
}
