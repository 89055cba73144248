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
