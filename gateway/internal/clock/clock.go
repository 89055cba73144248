// Package clock reads the time for the data plane at half the cost of
// time.Now, in the manner of nginx's and Envoy's cached time.
//
// time.Now reads two clocks (wall and monotonic), each a vDSO call that a
// virtual machine's clock source makes slow; a proxied request reads the
// time several times. Now reads the monotonic clock only and derives the
// wall clock from a base that it takes again once a second, so that a step
// or slew of the wall clock shows within a second. Times from Now carry a
// monotonic reading: durations between them and deadlines set from them
// are exact; only their wall-clock value may lag a change of the system
// clock by up to a second.
package clock

import (
	"sync/atomic"
	"time"
)

// refreshAfter is how long a wall-clock base is used before Now reads the
// wall clock again.
const refreshAfter = time.Second

// epoch is the process's first reading of the clock; monotonic offsets are
// taken from it (time.Since reads only the monotonic clock).
var epoch = time.Now()

// base pairs a full reading of the clock with its monotonic offset from
// epoch.
type base struct {
	t    time.Time
	mono time.Duration
}

var current atomic.Pointer[base]

func init() { current.Store(&base{t: epoch}) }

// Now returns the current time with one clock read. It is safe for
// concurrent use.
func Now() time.Time {
	m := time.Since(epoch)
	b := current.Load()
	if d := m - b.mono; d >= 0 && d < refreshAfter {
		return b.t.Add(d)
	}
	t := time.Now()
	current.Store(&base{t: t, mono: t.Sub(epoch)})
	return t
}
