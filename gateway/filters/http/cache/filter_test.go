package cache

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// TestHitIsMarkedFromCache: a response served from the store carries
// Envoy's RFCF flag and response code details.
func TestHitIsMarkedFromCache(t *testing.T) {
	fa := benchFactory(nil)
	run(fa, &benchCallbacks{}, request("GET"), response("max-age=60"), buffer.New(make([]byte, 1024)))
	cb := &benchCallbacks{}
	fl := fa.NewFilter(cb).(*filter)
	if st := fl.DecodeHeaders(request("GET"), true); st != httpfilter.HeadersStopIteration {
		t.Fatalf("DecodeHeaders on a stored URL: %v, want StopIteration", st)
	}
	fl.OnDestroy()
	if cb.info.ResponseFlags&httpfilter.FlagResponseFromCacheFilter == 0 || cb.info.ResponseDetails != ResponseDetails {
		t.Errorf("flags %v details %q, want RFCF and %q", cb.info.ResponseFlags, cb.info.ResponseDetails, ResponseDetails)
	}
	if cb.sent != 1+1024 {
		t.Errorf("sent %d (head + body bytes), want %d", cb.sent, 1+1024)
	}
}

// TestUnfinishedResponsesAreNotStored: a stream destroyed before its
// response ended (reset), a body shorter than its Content-Length, and a
// response with trailers leave nothing in the store.
func TestUnfinishedResponsesAreNotStored(t *testing.T) {
	fa := benchFactory(nil)
	cb := &benchCallbacks{}
	// Reset mid-body.
	fl := fa.NewFilter(cb).(*filter)
	fl.DecodeHeaders(request("GET"), true)
	fl.EncodeHeaders(response("max-age=60"), false)
	fl.EncodeData(buffer.New(make([]byte, 100)), false)
	fl.OnDestroy()
	// Truncated: Content-Length 1024, 100 bytes, end.
	fl = fa.NewFilter(cb).(*filter)
	fl.DecodeHeaders(request("GET"), true)
	fl.EncodeHeaders(response("max-age=60"), false)
	fl.EncodeData(buffer.New(make([]byte, 100)), true)
	fl.OnDestroy()
	// Trailers.
	fl = fa.NewFilter(cb).(*filter)
	fl.DecodeHeaders(request("GET"), true)
	r := response("max-age=60")
	r.Del("content-length")
	fl.EncodeHeaders(r, false)
	fl.EncodeData(buffer.New(make([]byte, 100)), false)
	fl.EncodeTrailers(&httpfilter.Headers{})
	fl.OnDestroy()
	if n, _ := fa.store.usage(); n != 0 {
		t.Errorf("%d entries stored, want 0", n)
	}
}

// TestEntriesExpireWithMaxAge: with a stepped clock, a max-age=10 entry
// is served at 5 s with Age 5 and not at 11 s.
func TestEntriesExpireWithMaxAge(t *testing.T) {
	fa := benchFactory(nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fa.now = func() time.Time { return now }
	r := response("max-age=10")
	r.Del("etag")
	run(fa, &benchCallbacks{}, request("GET"), r, buffer.New(make([]byte, 1024)))
	now = now.Add(5 * time.Second)
	cb := &benchCallbacks{}
	fl := fa.NewFilter(cb).(*filter)
	if st := fl.DecodeHeaders(request("GET"), true); st != httpfilter.HeadersStopIteration {
		t.Fatalf("at 5 s: %v, want a hit", st)
	}
	if got := string(fl.resp.Get("age")); got != "5" {
		t.Errorf("at 5 s: age %q, want 5", got)
	}
	fl.OnDestroy()
	now = now.Add(6 * time.Second)
	fl = fa.NewFilter(cb).(*filter)
	if st := fl.DecodeHeaders(request("GET"), true); st != httpfilter.HeadersContinue {
		t.Errorf("at 11 s: %v, want a miss", st)
	}
	fl.OnDestroy()
}
