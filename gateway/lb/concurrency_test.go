package lb

import (
	"sync"
	"testing"
)

// TestPickDuringUpdateReturnsHostOfOneList runs picks on many goroutines
// while the host list shrinks and grows: every pick must be a valid index of
// the list it came from (run with -race).
func TestPickDuringUpdateReturnsHostOfOneList(t *testing.T) {
	for _, name := range []string{RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy} {
		t.Run(name, func(t *testing.T) {
			small, large := newHosts(3), newHosts(9)
			p := mustNew(t, Config{Policy: name, Maglev: MaglevConfig{TableSize: 1021}}, large)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			errs := make(chan int, 4)
			for g := range 4 {
				wg.Go(func() {
					for k := 0; ; k++ {
						select {
						case <-stop:
							return
						default:
						}
						if i := p.Pick(keyed(g*1_000_000 + k)); i < 0 || i >= 9 {
							errs <- i
							return
						}
					}
				})
			}
			for k := range 200 {
				if k%2 == 0 {
					p.Update(small)
				} else {
					p.Update(large)
				}
			}
			close(stop)
			wg.Wait()
			close(errs)
			for i := range errs {
				t.Errorf("pick during update = %d, want a host index", i)
			}
		})
	}
}
