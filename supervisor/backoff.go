package supervisor

import "time"

// Restart backoff of a crashing worker slot: the first restart is
// immediate, then the delay starts at backoffMin and doubles up to
// backoffMax; a worker that stayed up backoffReset starts afresh.
const (
	backoffMin   = 50 * time.Millisecond
	backoffMax   = 5 * time.Second
	backoffReset = 10 * time.Second
)

// backoff is the restart delay state of one slot. It is owned by the
// supervisor's event loop.
type backoff struct {
	next time.Duration
}

// delay returns how long to wait before restarting a worker that ran for
// uptime, and advances the state.
func (b *backoff) delay(uptime time.Duration) time.Duration {
	if uptime >= backoffReset {
		b.next = 0
	}
	d := b.next
	b.next = min(max(2*b.next, backoffMin), backoffMax)
	return d
}
