package fault

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Stats are the filter's stats, Envoy's http.<stat_prefix>.fault.*.
type Stats struct {
	// DelaysInjected, AbortsInjected and ResponseRLInjected count the
	// faults injected; FaultsOverflow the requests that got none because
	// max_active_faults were in progress.
	DelaysInjected, AbortsInjected, ResponseRLInjected, FaultsOverflow *stats.Counter
	// ActiveFaults is the requests with a fault in progress.
	ActiveFaults *stats.Gauge
}

// counterNames are the counters under <scope>fault., in the order of the
// Stats fields.
var counterNames = []string{"delays_injected", "aborts_injected", "response_rl_injected", "faults_overflow"}

const gaugeName = "active_faults"

func newStats(slab *stats.Slab, scope string) Stats {
	c := func(i int) *stats.Counter { return slab.Counter(scope + "fault." + counterNames[i]) }
	return Stats{DelaysInjected: c(0), AbortsInjected: c(1), ResponseRLInjected: c(2), FaultsOverflow: c(3),
		ActiveFaults: slab.Gauge(scope + "fault." + gaugeName)}
}

// StatDefs implements stats.FilterStats: Envoy's fault counters and gauge
// under the HTTP connection manager's scope.
func (c *Config) StatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, 0, len(counterNames)+1)
	for _, n := range counterNames {
		defs = append(defs, stats.Def{Name: scope + "fault." + n, Kind: stats.KindCounter})
	}
	return append(defs, stats.Def{Name: scope + "fault." + gaugeName, Kind: stats.KindGauge})
}

// Factory is a built fault filter. It is immutable (but for its stats and
// active count) and safe for concurrent use.
type Factory struct {
	s     *settings
	stats Stats
	// active is the worker's count of requests with a fault in progress,
	// the value max_active_faults bounds (ActiveFaults mirrors it).
	active atomic.Int64
}

// Stats returns the factory's stats.
func (f *Factory) Stats() *Stats { return &f.stats }

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{f: f, cb: cb}
}

// peerWatcher is implemented by the HTTP connection manager's HTTP/1.1
// streams (see the router's): WatchPeer makes *abort run, on another
// goroutine, when the client is found gone; UnwatchPeer ends the watch
// and reports whether it fired.
type peerWatcher interface {
	WatchPeer(abort *func())
	UnwatchPeer() (fired bool)
}

// streamWatcher is implemented by the HTTP connection manager's streams:
// on HTTP/2 and HTTP/3 (Context not nil), AfterReset runs f on a goroutine
// of its own when the stream is reset or its connection ends.
type streamWatcher interface {
	Context() context.Context
	AfterReset(f func()) (stop func() bool)
}

// filter is one stream's instance. Its methods, and the functions it
// posts, run on the stream's goroutine; the delay's timer and the client
// watch run on others and only Post.
type filter struct {
	f  *Factory
	cb httpfilter.DecoderCallbacks
	s  *settings
	h  *httpfilter.RequestHeaders

	active   bool // counted in f.active
	delaying bool

	timer     *time.Timer
	peerAbort func()
	watching  peerWatcher // while a peer watch is on
	stopReset func() bool // while an AfterReset watch is on
	destroyed bool        // OnDestroy ran
	grpc      bool        // the request is gRPC

	// The response body's limit, set by DecodeHeaders, used by Pace on
	// the encoding goroutine.
	bytesPerSec, perTick int64 // 0: not limited
	next                 time.Time

	mu     sync.Mutex // guards posted, which the timer and watches read
	posted bool       // the delay's end or the client's going was posted, or the stream ended
}

// DecodeHeaders implements httpfilter.DecoderFilter: it decides the
// request's faults, and parks the chain for a delay or ends the stream
// for an abort.
func (fl *filter) DecodeHeaders(h *httpfilter.RequestHeaders, _ bool) httpfilter.HeadersStatus {
	s := fl.f.s
	if r := fl.cb.Route(); r != nil {
		if pr, ok := r.PerFilterConfig(Name).(*perRoute); ok {
			if pr.disabled {
				return httpfilter.HeadersContinue
			}
			s = pr.s
		}
	}
	if !fl.matches(s, h) {
		return httpfilter.HeadersContinue
	}
	if fl.f.active.Load() >= s.maxActive {
		fl.f.stats.FaultsOverflow.Inc()
		return httpfilter.HeadersContinue
	}
	fl.s, fl.h = s, h
	fl.grpc = grpcwire.IsGRPC(h.Get("content-type"))
	if kbps, ok := s.rateLimitFor(h); ok {
		fl.incActive()
		fl.f.stats.ResponseRLInjected.Inc()
		fl.bytesPerSec = kbps * 1024
		fl.perTick = max(fl.bytesPerSec/ticksPerSec, 1)
	}
	if d, ok := s.delayFor(h); ok {
		fl.startDelay(d)
		return httpfilter.HeadersStopIteration
	}
	if fl.maybeAbort() {
		return httpfilter.HeadersStopIteration
	}
	return httpfilter.HeadersContinue
}

// matches applies upstream_cluster, downstream_nodes and headers, in
// Envoy's order.
func (fl *filter) matches(s *settings, h *httpfilter.RequestHeaders) bool {
	if s.cluster != "" {
		r, ok := fl.cb.Route().(interface{ ClusterName() string })
		if !ok || r.ClusterName() != s.cluster {
			return false
		}
	}
	if len(s.nodes) > 0 {
		v := h.Get(HeaderDownstreamNode)
		found := false
		for _, n := range s.nodes {
			found = found || (v != nil && string(v) == n)
		}
		if !found {
			return false
		}
	}
	for i := range s.headers {
		if !s.headers[i].Match(h) {
			return false
		}
	}
	return true
}

// hit draws whether a request falls in p percent.
func hit(p percent) bool {
	return p >= 100 || (p > 0 && rand.Float64()*100 < float64(p))
}

// headerPct is the percentage for a header-controlled fault: the header's
// value when valid, capped by the configured one (Envoy's numerator cap).
func headerPct(h *httpfilter.RequestHeaders, name string, configured percent) percent {
	if v := h.Get(name); v != nil {
		if p, ok := parsePercent(v); ok && p < configured {
			return p
		}
	}
	return configured
}

// delayFor decides the request's delay.
func (s *settings) delayFor(h *httpfilter.RequestHeaders) (time.Duration, bool) {
	if !s.hasDelay {
		return 0, false
	}
	d, p := s.delay, s.delayPct
	if s.headerDelay {
		var ok bool
		if d, ok = parseDelay(h.Get(HeaderDelayRequest)); !ok {
			return 0, false
		}
		p = headerPct(h, HeaderDelayPercentage, p)
	}
	return d, hit(p)
}

// rateLimitFor decides the limit of the request's response body, in KiB
// per second.
func (s *settings) rateLimitFor(h *httpfilter.RequestHeaders) (int64, bool) {
	if !s.hasRL {
		return 0, false
	}
	kbps, p := s.kbps, s.rlPct
	if s.headerRL {
		var ok bool
		if kbps, ok = parseKbps(h.Get(HeaderThroughputResponse)); !ok {
			return 0, false
		}
		p = headerPct(h, HeaderThroughputPercentage, p)
	}
	return kbps, hit(p)
}

// abortFor decides the request's abort: an HTTP status, and a gRPC status
// (-1 for none; with one, the HTTP status is 200).
func (s *settings) abortFor(h *httpfilter.RequestHeaders) (status, grpc int, ok bool) {
	if !s.hasAbort {
		return 0, -1, false
	}
	status, grpc, p := s.abortStatus, s.abortGRPC, s.abortPct
	if s.headerAbort {
		if st, ok := parseHTTPStatus(h.Get(HeaderAbortRequest)); ok {
			status = st
		} else if g, ok := parseGRPCStatus(h.Get(HeaderAbortGRPCRequest)); ok {
			grpc = g
		} else {
			return 0, -1, false
		}
		p = headerPct(h, HeaderAbortPercentage, p)
	}
	if status == 0 {
		status = 200 // a gRPC abort: the status is in grpc-status
	}
	return status, grpc, hit(p)
}

func (fl *filter) incActive() {
	if !fl.active {
		fl.active = true
		fl.f.active.Add(1)
		fl.f.stats.ActiveFaults.Inc()
	}
}

// maybeAbort ends the stream with the abort's local reply if the request
// is to be aborted.
func (fl *filter) maybeAbort() bool {
	status, grpc, ok := fl.s.abortFor(fl.h)
	if !ok {
		return false
	}
	fl.incActive()
	fl.f.stats.AbortsInjected.Inc()
	r := httpfilter.LocalReply{Status: status, Body: "fault filter abort", Flags: httpfilter.FlagFaultInjected,
		Details: "fault_filter_abort"}
	if grpc >= 0 && fl.grpc {
		r.Headers = []httpfilter.Field{{Name: grpcwire.StatusHeader, Value: strconv.AppendInt(nil, int64(grpc), 10)}}
	}
	fl.cb.SendLocalReply(r)
	return true
}

// startDelay parks the request for d, watching for the client going away.
func (fl *filter) startDelay(d time.Duration) {
	fl.delaying = true
	fl.incActive()
	fl.f.stats.DelaysInjected.Inc()
	fl.cb.Info().ResponseFlags |= httpfilter.FlagDelayInjected
	if sw, ok := fl.cb.(streamWatcher); ok && sw.Context() != nil {
		fl.stopReset = sw.AfterReset(func() { fl.post(fl.clientGone) })
	} else if pw, ok := fl.cb.(peerWatcher); ok {
		fl.peerAbort = func() { fl.post(fl.clientGone) }
		pw.WatchPeer(&fl.peerAbort)
		fl.watching = pw
	}
	fl.timer = time.AfterFunc(d, func() { fl.post(fl.delayOver) })
}

// post hands fn to the stream's goroutine, once: the first of the delay's
// end and the client's going away wins, and nothing is posted after
// OnDestroy.
func (fl *filter) post(fn func()) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.posted {
		return
	}
	fl.posted = true
	fl.cb.Post(fn)
}

// unwatch ends the client watch and reports whether the client went away.
func (fl *filter) unwatch() (gone bool) {
	if fl.watching != nil {
		gone = fl.watching.UnwatchPeer()
		fl.watching = nil
	}
	if fl.stopReset != nil {
		gone = !fl.stopReset() || gone
		fl.stopReset = nil
	}
	return gone
}

// delayOver runs on the stream's goroutine when the delay has passed: the
// request is aborted or goes on.
func (fl *filter) delayOver() {
	if fl.destroyed || !fl.delaying {
		return
	}
	if fl.unwatch() {
		fl.end()
		return
	}
	fl.delaying = false
	if !fl.maybeAbort() {
		fl.cb.ContinueDecoding()
	}
}

// clientGone runs on the stream's goroutine when the client went away
// during the delay.
func (fl *filter) clientGone() {
	if fl.destroyed || !fl.delaying {
		return
	}
	fl.timer.Stop()
	fl.unwatch()
	fl.end()
}

// end resets the stream of a client that went away during the delay.
func (fl *filter) end() {
	fl.delaying = false
	fl.cb.Info().ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
	if r, ok := fl.cb.(httpfilter.StreamResetter); ok {
		r.ResetStream()
	}
}

// DecodeData implements httpfilter.DecoderFilter: body data waits out the
// delay in the manager's buffer.
func (fl *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	if fl.delaying {
		return httpfilter.DataStopAndBuffer
	}
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (fl *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	if fl.delaying {
		return httpfilter.TrailersStopIteration
	}
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter: it stops a delay still
// running and ends the request's fault.
func (fl *filter) OnDestroy() {
	fl.mu.Lock()
	fl.posted = true
	fl.mu.Unlock()
	fl.destroyed = true
	if fl.timer != nil {
		fl.timer.Stop()
	}
	fl.unwatch()
	if fl.active {
		fl.active = false
		fl.f.active.Add(-1)
		fl.f.stats.ActiveFaults.Dec()
	}
	fl.h = nil
}

// ticksPerSec is how often a limited body moves: Envoy's rate limiter
// releases its bytes in sixteenths of a second.
const ticksPerSec = 16

// Pace implements httpfilter.BodyPacer: a limited response's body goes out
// a sixteenth of a second's worth at a time, the first at once.
func (fl *filter) Pace(n int) int {
	if fl.bytesPerSec == 0 {
		return n
	}
	now := time.Now()
	if fl.next.IsZero() || fl.next.Before(now) {
		fl.next = now
	} else {
		time.Sleep(fl.next.Sub(now))
	}
	k := min(int64(n), fl.perTick)
	fl.next = fl.next.Add(time.Duration(k * int64(time.Second) / fl.bytesPerSec))
	return int(k)
}

// EncodeHeaders implements httpfilter.EncoderFilter.
func (fl *filter) EncodeHeaders(*httpfilter.ResponseHeaders, bool) httpfilter.HeadersStatus {
	return httpfilter.HeadersContinue
}

// EncodeData implements httpfilter.EncoderFilter: the limit applies in
// Pace, when the body is written.
func (fl *filter) EncodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// EncodeTrailers implements httpfilter.EncoderFilter.
func (fl *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
	_ httpfilter.EncoderFilter = (*filter)(nil)
	_ httpfilter.BodyPacer     = (*filter)(nil)
)
