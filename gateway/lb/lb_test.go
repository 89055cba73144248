package lb

import "testing"

type hosts []bool

func (h hosts) Len() int           { return len(h) }
func (h hosts) Healthy(i int) bool { return h[i] }

func TestRoundRobinCyclesThroughHealthyHosts(t *testing.T) {
	rr := &RoundRobin{}
	h := hosts{true, false, true}
	got := map[int]int{}
	for range 10 {
		got[rr.Pick(h)]++
	}
	if got[1] != 0 || got[0] == 0 || got[2] == 0 || got[0]+got[2] != 10 {
		t.Fatalf("picks = %v, want only hosts 0 and 2", got)
	}
	if i := rr.Pick(hosts{false, false}); i != -1 {
		t.Fatalf("pick with no healthy host = %d, want -1", i)
	}
	if i := rr.Pick(hosts{}); i != -1 {
		t.Fatalf("pick with no host = %d, want -1", i)
	}
}

func BenchmarkRoundRobinPick(b *testing.B) {
	rr := &RoundRobin{}
	h := hosts{true, true, true, true}
	b.ReportAllocs()
	for b.Loop() {
		rr.Pick(h)
	}
}
