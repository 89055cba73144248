package lb

import (
	"fmt"
	"testing"
)

func TestRandomCoversAllHostsUniformlyIgnoringWeights(t *testing.T) {
	const n = 40000
	p := mustNew(t, Config{Policy: RandomPolicy}, weightedHosts(1, 1, 8, 1))
	got := counts(t, p, 4, n, nil)
	for i, c := range got {
		near(t, fmt.Sprintf("host %d", i), c, n, 0.25, 0.02)
	}
}
