package gwtest

import (
	"testing"
	"time"
)

// RecvTimeout bounds Recv: long enough for a request through a proxy on a
// loaded 2-core machine with the race detector, short enough that a lost
// request fails its test by name long before go test's own timeout.
const RecvTimeout = 30 * time.Second

// Recv returns the next value from ch, failing the test with what if none
// arrives within RecvTimeout.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(RecvTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("no %s within %v", what, RecvTimeout)
		panic("unreachable")
	}
}
