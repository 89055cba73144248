package healthcheck

import (
	"bytes"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Factory is a built health_check filter. It is immutable and safe for
// concurrent use.
type Factory struct {
	path        string
	passThrough bool
	failed      *stats.Gauge
}

// Failed reports whether health checks fail now (after the admin
// /healthcheck/fail).
func (f *Factory) Failed() bool { return f.failed.Value() != 0 }

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{f: f, cb: cb}
}

// filter is one stream's instance; its methods run on the stream's
// goroutine, one at a time.
type filter struct {
	f  *Factory
	cb httpfilter.DecoderCallbacks
}

// isCheck reports whether path (with an optional query) is the health check
// path.
func (f *Factory) isCheck(path []byte) bool {
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return string(path) == f.path
}

// httpfilter.DecoderFilter

// DecodeHeaders implements httpfilter.DecoderFilter: a health check is
// marked as one in the stream's info (for the access log's
// not_health_check_filter) and answered 503 while failed, else 200 (or
// passed on in pass-through mode); other requests pass.
func (l *filter) DecodeHeaders(h *httpfilter.RequestHeaders, _ bool) httpfilter.HeadersStatus {
	f := l.f
	if !f.isCheck(h.Path) {
		return httpfilter.HeadersContinue
	}
	l.cb.Info().HealthCheck = true
	if f.Failed() {
		l.cb.SendLocalReply(httpfilter.LocalReply{Status: 503, Details: "health_check_failed"})
		return httpfilter.HeadersStopIteration
	}
	if f.passThrough {
		return httpfilter.HeadersContinue
	}
	l.cb.SendLocalReply(httpfilter.LocalReply{Status: 200, Details: "health_check_ok"})
	return httpfilter.HeadersStopIteration
}

// DecodeData implements httpfilter.DecoderFilter.
func (l *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (l *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter.
func (l *filter) OnDestroy() {}

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
)
