package lb

import "testing"

func TestLeastRequestPrefersLessLoadedHost(t *testing.T) {
	const n = 20000
	h := newHosts(2)
	h.h[0].active.Store(5)
	p := mustNew(t, Config{Policy: LeastRequestPolicy}, h)
	// Two random choices: the idle host wins unless both draws are host 0.
	got := counts(t, p, 2, n, nil)
	near(t, "idle host", got[1], n, 0.75, 0.02)

	// With more choices the idle host nearly always wins.
	p = mustNew(t, Config{Policy: LeastRequestPolicy, LeastRequest: LeastRequestConfig{ChoiceCount: 8}}, h)
	got = counts(t, p, 2, n, nil)
	near(t, "idle host, 8 choices", got[1], n, 1-1.0/256, 0.005)

	// Equal load: a plain random spread.
	h.h[0].active.Store(0)
	got = counts(t, mustNew(t, Config{Policy: LeastRequestPolicy}, h), 2, n, nil)
	near(t, "equal load", got[0], n, 0.5, 0.02)
}

func TestLeastRequestWeighsActiveRequestsAgainstWeight(t *testing.T) {
	const n = 20000
	h := weightedHosts(1, 3)
	p := mustNew(t, Config{Policy: LeastRequestPolicy}, h)
	// Idle: draws follow weight, and the heavier host wins any comparison.
	got := counts(t, p, 2, n, nil)
	near(t, "heavy host, idle", got[1], n, 1-0.25*0.25, 0.02)

	// The heavy host has 9 in flight: effective weight 3/10 < 1/1, so the
	// light host wins whenever it is drawn.
	h.h[1].active.Store(9)
	got = counts(t, p, 2, n, nil)
	near(t, "light host, heavy busy", got[0], n, 1-0.75*0.75, 0.02)

	// Bias 0: weight alone decides, whatever the load.
	p = mustNew(t, Config{Policy: LeastRequestPolicy, LeastRequest: LeastRequestConfig{ActiveRequestBias: ptr(0.0)}}, h)
	got = counts(t, p, 2, n, nil)
	near(t, "heavy host, bias 0", got[1], n, 1-0.25*0.25, 0.02)

	// Bias 0.5: 3/sqrt(10) = 0.95 < 1: the light host still wins.
	p = mustNew(t, Config{Policy: LeastRequestPolicy, LeastRequest: LeastRequestConfig{ActiveRequestBias: ptr(0.5)}}, h)
	got = counts(t, p, 2, n, nil)
	near(t, "light host, bias 0.5", got[0], n, 1-0.75*0.75, 0.02)
}
