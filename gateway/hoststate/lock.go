package hoststate

import (
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// lock takes the region's key lock: a word holding the owner's pid. A
// process that finds the owner dead (kill(pid, 0) fails with ESRCH) steals
// the lock, so a crash while holding it wedges nobody. The lock is held
// only while keys are written (microseconds), never on the data path.
func (r *Region) lock() {
	r.mu.Lock()
	pid := uint64(os.Getpid())
	w := r.hdr(hdrLock)
	for spins := 0; ; spins++ {
		cur := atomic.LoadUint64(w)
		if cur == 0 {
			if atomic.CompareAndSwapUint64(w, 0, pid) {
				return
			}
			continue
		}
		if spins >= lockStealAfterSpin && spins%lockStealAfterSpin == 0 && !alive(int(cur)) {
			if atomic.CompareAndSwapUint64(w, cur, pid) {
				return
			}
		}
		if spins < lockStealAfterSpin {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

func (r *Region) unlock() {
	atomic.StoreUint64(r.hdr(hdrLock), 0)
	r.mu.Unlock()
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || !errors.Is(err, unix.ESRCH)
}
