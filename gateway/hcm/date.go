package hcm

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/clock"
)

// hdrDate is the Date field's name.
var hdrDate = []byte("date")

// cachedDate is the Date value of one second.
type cachedDate struct {
	sec int64
	val []byte // never modified once stored: streams share it
}

// lastDate holds the value made last; a second's first response makes it.
var lastDate atomic.Pointer[cachedDate]

// dateValue returns the IMF-fixdate (RFC 9110 §5.6.7) of now, made at
// most about once a second.
func dateValue(now time.Time) []byte {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.val
	}
	d := &cachedDate{sec: sec, val: now.UTC().AppendFormat(make([]byte, 0, len(http.TimeFormat)), http.TimeFormat)}
	lastDate.Store(d)
	return d.val
}

// addDate adds a Date field to a final response head that has none: a
// proxy with a clock adds it to a response it forwards without one, and
// sluice's own replies (an origin's) carry one (RFC 9110 §6.6.1), as
// Envoy's responses do. An upstream's Date is kept.
func addDate(h *httpfilter.ResponseHeaders) {
	if !h.Has("date") {
		h.AddBytes(hdrDate, dateValue(clock.Now()))
	}
}
