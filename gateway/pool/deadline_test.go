package pool

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestSetReadDeadlineNearKeepsADeadlineWithinTheSlack: a deadline asked
// for just after the one set is served by it (no timer update), one asked
// for earlier than the set one's slack allows replaces it, and a read then
// times out by the new one, not the old.
func TestSetReadDeadlineNearKeepsADeadlineWithinTheSlack(t *testing.T) {
	addr, accepted := listen(t)
	p := New(Options{Address: addr, ConnectTimeout: time.Second, MaxIdle: 1, IdleTimeout: time.Minute})
	defer p.Close()
	c, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case srv := <-accepted:
		defer srv.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("upstream accepted nothing")
	}

	far := time.Now().Add(time.Hour)
	if err := c.SetReadDeadlineNear(far); err != nil {
		t.Fatal(err)
	}
	if got := c.rdl; !got.Equal(far.Add(DeadlineSlack)) {
		t.Fatalf("deadline %v, want the asked one plus the slack %v", got, far.Add(DeadlineSlack))
	}
	// Asked a little later: the set deadline is still within the slack.
	if err := c.SetReadDeadlineNear(far.Add(DeadlineSlack / 2)); err != nil {
		t.Fatal(err)
	}
	if got := c.rdl; !got.Equal(far.Add(DeadlineSlack)) {
		t.Fatalf("deadline moved to %v for a request inside the slack", got)
	}
	// Asked much earlier (a shorter timeout): the set one is replaced.
	soon := time.Now().Add(50 * time.Millisecond)
	if err := c.SetReadDeadlineNear(soon); err != nil {
		t.Fatal(err)
	}
	if got := c.rdl; !got.Equal(soon.Add(DeadlineSlack)) {
		t.Fatalf("deadline %v, want %v", got, soon.Add(DeadlineSlack))
	}
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("read waited %v: the earlier deadline was not set", waited)
	}
	// Zero clears it.
	if err := c.SetReadDeadlineNear(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if !c.rdl.IsZero() {
		t.Fatalf("deadline %v after asking for none", c.rdl)
	}
}
