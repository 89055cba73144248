package tracing

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestFlushWaitsForTheSendUnderWay checks that flush, which a drained
// worker runs before it exits, also waits for the batch the exporter's
// goroutine is sending: returning while that send is under way would let
// the process exit with its spans half sent.
func TestFlushWaitsForTheSendUnderWay(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	e := &exporter{endpoint: srv.URL, service: "svc", client: &http.Client{Timeout: 10 * time.Second},
		interval: time.Hour, minFlush: 1, maxQueue: 16, kick: make(chan struct{}, 1)}
	e.stats.Store(newCounters(nil))
	e.enqueue(&spanData{name: "a"})
	select {
	case <-arrived: // the goroutine's send is at the collector
	case <-time.After(10 * time.Second):
		t.Fatal("the exporter never sent its batch")
	}
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	e.flush()
	if n := e.stats.Load().reportsSent.Value(); n != 1 {
		t.Fatalf("flush returned with %d reports sent, want the one under way finished", n)
	}
}
