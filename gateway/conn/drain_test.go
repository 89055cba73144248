package conn

import (
	"testing"
	"time"
)

func TestDrainCloseFollowsTheStrategy(t *testing.T) {
	tr := NewTracker(nil)
	if tr.drainClose() {
		t.Fatal("a connection is asked to close before any drain")
	}

	tr.SetDrainPolicy(DrainPolicy{Gradual: false, Timeout: time.Minute})
	tr.Drain()
	for range 100 {
		if !tr.drainClose() {
			t.Fatal("immediate: a response went out without a close")
		}
	}

	grad := NewTracker(nil)
	grad.SetDrainPolicy(DrainPolicy{Gradual: true, Timeout: time.Hour})
	grad.Drain() // just started: the probability is ~0
	closes := 0
	for range 1000 {
		if grad.drainClose() {
			closes++
		}
	}
	if closes > 5 {
		t.Fatalf("gradual, at the start of an hour-long drain: %d of 1000 responses closed", closes)
	}
	grad.drainStart = time.Now().Add(-20 * time.Minute) // 2/3 of the way to half the timeout
	closes = 0
	for range 1000 {
		if grad.drainClose() {
			closes++
		}
	}
	if closes < 550 || closes > 780 {
		t.Fatalf("gradual, 20 min into an hour-long drain: %d of 1000 closed, want about 667", closes)
	}
	grad.drainStart = time.Now().Add(-31 * time.Minute) // past half the timeout
	for range 100 {
		if !grad.drainClose() {
			t.Fatal("gradual, past half the timeout: a response went out without a close")
		}
	}
}
