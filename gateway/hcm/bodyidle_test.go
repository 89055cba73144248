package hcm

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkBodyIdleRead is the per-read cost stream_idle_timeout adds to an
// HTTP/2 or HTTP/3 request body read (the timer is armed once per stream).
func BenchmarkBodyIdleRead(b *testing.B) {
	bi := newBodyIdle(time.Minute, httptest.NewRecorder())
	defer bi.stop()
	for b.Loop() {
		bi.reading()
		if bi.done() {
			b.Fatal("expired")
		}
	}
}

// BenchmarkBodyIdleStream is the per-stream cost: arming and stopping the
// timer of a stream that reads a body.
func BenchmarkBodyIdleStream(b *testing.B) {
	w := httptest.NewRecorder()
	for b.Loop() {
		newBodyIdle(time.Minute, w).stop()
	}
}

// TestBodyIdleExpiresAPendingRead checks that a read waiting longer than the
// timeout is reported expired and that the writer got a past read deadline,
// while reads that end in time are not.
func TestBodyIdleExpiresAPendingRead(t *testing.T) {
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder(), set: make(chan time.Time, 1)}
	bi := newBodyIdle(100*time.Millisecond, w)
	defer bi.stop()
	for range 3 { // quick reads, with gaps between them longer than the timeout
		bi.reading()
		if bi.done() {
			t.Fatal("a quick read expired")
		}
		time.Sleep(150 * time.Millisecond) // time outside a read does not count
	}
	bi.reading()
	select {
	case d := <-w.set:
		if !d.Before(time.Now()) {
			t.Fatalf("read deadline %v is not in the past", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled read was not expired")
	}
	if !bi.done() {
		t.Fatal("done does not report the expired read")
	}
}

type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set chan time.Time
}

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error {
	d.set <- t
	return nil
}

var _ http.ResponseWriter = (*deadlineRecorder)(nil)

// TestBodyIdleSetsNoDeadlineAfterStop checks that once stop has returned
// (the stream's handler may return right after, and x/net's response
// writer is unusable then: a read deadline set on it panics), an expiry
// already under way on the timer's goroutine no longer sets the read
// deadline. The writer holds the expiry inside SetReadDeadline until stop
// returns, or for 300ms when stop rightly waits for it.
func TestBodyIdleSetsNoDeadlineAfterStop(t *testing.T) {
	w := &lateDeadline{ResponseRecorder: httptest.NewRecorder(), entered: make(chan struct{}), stopped: make(chan struct{}),
		result: make(chan bool, 1)}
	bi := newBodyIdle(time.Millisecond, w)
	bi.reading()
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the read was never expired")
	}
	bi.stop()
	close(w.stopped)
	select {
	case late := <-w.result:
		if late {
			t.Fatal("the read deadline was set after stop returned")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetReadDeadline never finished")
	}
}

// lateDeadline is a response writer whose SetReadDeadline reports entering,
// then waits for stopped (or 300ms) and reports whether stop had returned.
type lateDeadline struct {
	*httptest.ResponseRecorder
	entered, stopped chan struct{}
	result           chan bool
}

func (d *lateDeadline) SetReadDeadline(time.Time) error {
	close(d.entered)
	select {
	case <-d.stopped:
		d.result <- true
	case <-time.After(300 * time.Millisecond):
		d.result <- false
	}
	return nil
}
