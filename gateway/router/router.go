package router

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/clock"
	"github.com/sluice-proxy/sluice/gateway/lb"
	"github.com/sluice-proxy/sluice/gateway/pool"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// bodyChunk is the size of the buffer a response body is copied through.
const bodyChunk = 32 << 10

var (
	filterPool = sync.Pool{New: func() any { return new(filter) }}
	chunkPool  = sync.Pool{New: func() any { b := make([]byte, bodyChunk); return &b }}
)

type factory struct {
	log *zap.Logger
}

// NewFilter implements httpfilter.Factory.
func (fa *factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	f := filterPool.Get().(*filter)
	f.cb = cb
	f.log = fa.log
	return f
}

// filter is one stream's router. It does the upstream exchange on the
// stream's goroutine: the request is written as the decoder path delivers
// it, and once the request is complete the response is read and passed to
// the encoder path before the last decode call returns.
type filter struct {
	cb    httpfilter.DecoderCallbacks
	log   *zap.Logger
	route *Route
	// timeout and rp are the request's route timeout (0: none) and
	// retry policy (nil: none): the route's, or what the request's
	// override headers and grpc-timeout made of them (override.go).
	timeout time.Duration
	rp      *RetryPolicy
	// policy holds rp when the request's headers changed the route's
	// policy; codes its retriable status codes then. altResponse: the
	// route timeout is answered 204, not 504
	// (x-envoy-upstream-rq-timeout-alt-response).
	policy      RetryPolicy
	codes       []int
	altResponse bool
	// expBuf and grpcBuf hold the x-envoy-expected-rq-timeout-ms and
	// grpc-timeout values an override computed (set without a copy).
	expBuf, grpcBuf []byte
	// cluster is the cluster the request goes to (the route's, or the one
	// its weighted_clusters picked); mutations are the header mutations
	// that go with it.
	cluster   *cluster.Cluster
	mutations []*headerMutations
	host      *cluster.Host
	uc        *pool.Conn
	req       *httpfilter.RequestHeaders

	stats      *stats.ClusterStats
	lbReq      lb.Request
	framing    http1.Framing // upstream request body framing
	replayable bool          // may be resent on a fresh connection
	headLen    int           // bytes of uc.W holding the request head
	writeErr   error         // the upstream stopped taking the request
	resp       http1.Response
	pathBuf    []byte
	svcTime    []byte // x-envoy-upstream-service-time's value
	data       buffer.Buffer

	// An HTTP/2 downstream stream: its context, done when the client resets
	// the stream, and the stop of the watch that aborts an HTTP/1 upstream
	// exchange then. Both nil for HTTP/1 downstreams.
	ctx       context.Context
	stopWatch func() bool
	// An HTTP/1.1 downstream stream: the watch for the client going away
	// while the request is at the upstream (nil for other streams), and
	// whether one is under way.
	pw           peerWatcher
	peerWatching bool
	// h2 is the upstream HTTP/2 request; nil for HTTP/1 upstreams.
	h2 *h2req

	// Resilience state: the cluster's request breaker is held from
	// DecodeHeaders to OnDestroy; a route with a retry policy buffers the
	// request (body up to the policy's limit) before its first try.
	rqHeld     bool
	retryHeld  bool // holds a unit of the cluster's retry breaker
	headRead   bool // the try being retried read a whole response head (putBack)
	buffering  bool // retry route: the request is being buffered
	noRetry    bool // the body outgrew the buffer: streamed, not retried
	contentLen int64
	reqBody    []byte
	tried      []*cluster.Host
	started    time.Time // when the request reached the router
	deadline   time.Time // the route timeout's end, zero for none
	// tryDeadline is the current try's end (route or per-try timeout),
	// which per_try_idle_timeout's renewed read deadlines never pass.
	tryDeadline time.Time
	// streamIdle is the manager's stream_idle_timeout (zero: none);
	// idleBound reports that the read deadline last set on f.uc is the
	// stream idle timeout's, so that a timeout there is one.
	streamIdle time.Duration
	idleBound  bool

	// shadow is the copy being made of the request for the route's
	// mirrors; nil when none (or once sent or abandoned).
	shadow *shadow

	// upgrading: a WebSocket upgrade was sent upstream, a 101 is expected.
	upgrading bool
	// perTryTimedOut: the failure fail ends the stream for is a per-try
	// (or per-try idle) timeout, not the route timeout.
	perTryTimedOut bool
	// sentEarly: part of the request was sent before exchange.
	sentEarly bool
}

// peerWatcher is implemented by the HTTP connection manager's HTTP/1.1
// streams. WatchPeer makes *abort run, on another goroutine, if the client
// is found gone while the watch lasts (netfilter.PeerCloseWatcher: looked
// at about once a second); UnwatchPeer ends the watch and reports whether
// it fired; PeerGone reports whether the current or last watch fired (the
// stream then carries flag DC). Called by the stream's goroutine.
type peerWatcher interface {
	WatchPeer(abort *func())
	UnwatchPeer() (fired bool)
	PeerGone() bool
}

// streamWatcher is implemented by the HTTP connection manager's streams.
// Context is the HTTP/2 or HTTP/3 stream's context (nil on HTTP/1.1).
// AfterReset is context.AfterFunc on it without its allocations: f runs on
// a goroutine of its own, once, when the stream is reset or its connection
// ends; stop unregisters f and reports whether it had not run.
type streamWatcher interface {
	Context() context.Context
	AfterReset(f func()) (stop func() bool)
}

// StreamInfo.Protocol of HTTP/2, HTTP/1.1 and HTTP/1.0 downstream streams.
const (
	protoHTTP2  = "HTTP/2"
	protoHTTP11 = "HTTP/1.1"
	protoHTTP10 = "HTTP/1.0"
)

var _ httpfilter.DecoderFilter = (*filter)(nil)

// httpfilter.DecoderFilter

func (f *filter) DecodeHeaders(h *httpfilter.RequestHeaders, endStream bool) httpfilter.HeadersStatus {
	info := f.cb.Info()
	rt, _ := f.cb.Route().(*Route)
	if rt == nil {
		f.reply(httpfilter.LocalReply{Status: 404, Flags: httpfilter.FlagNoRoute, Details: "route_not_found"})
		return httpfilter.HeadersStopIteration
	}
	f.route, f.req = rt, h
	f.cluster, f.mutations = rt.target()
	info.RouteName = rt.name
	switch {
	case rt.DirectResponse != nil:
		f.reply(httpfilter.LocalReply{Status: rt.DirectResponse.Status, Body: rt.DirectResponse.Body, Details: "direct_response"})
		return httpfilter.HeadersStopIteration
	case rt.Redirect != nil:
		f.reply(redirectReply(rt, h))
		return httpfilter.HeadersStopIteration
	}
	tn, upgrade := f.upgradeRequested()
	if upgrade != "" && !rt.allowsUpgrade(upgrade) {
		// Envoy's answer to an upgrade its config does not allow.
		f.reply(httpfilter.LocalReply{Status: 403, Details: "upgrade_failed"})
		return httpfilter.HeadersStopIteration
	}
	cl := f.cluster
	info.UpstreamCluster = cl.Name
	cl.Record.MarkTraffic()
	if !cl.Record.PriorityBreaker(rt.Priority, hoststate.Requests).TryAcquire(cl.LimitsOf(rt.Priority).Requests) {
		cl.Overflow.RqPending.Inc()
		f.localFailure(httpfilter.LocalReply{Status: 503, Flags: httpfilter.FlagUpstreamOverflow, Details: "upstream_rq_overflow"})
		return httpfilter.HeadersStopIteration
	}
	f.rqHeld = true
	f.started = clock.Now()
	if si, ok := f.cb.(httpfilter.StreamIdler); ok {
		f.streamIdle = si.StreamIdleTimeout()
	}
	f.timeout, f.rp = rt.Timeout, rt.Retry
	if envoy := f.overridesPresent(); envoy || rt.grpcTimeout {
		// The request's own timeouts and retry conditions (only an
		// internal client's reach here) and its gRPC deadline.
		f.override(h, envoy)
	} else if rt.Timeout > 0 {
		h.SetBytes(hdrExpectedRqTimeout, rt.expectedTimeoutMs(rt.expectedTimeout()))
	}
	if f.timeout > 0 {
		f.deadline = f.started.Add(f.timeout)
	}
	f.lbReq = lb.Request{OriginalDst: info.OriginalDst, Header: h}
	if rt.Hasher != nil {
		f.lbReq.Hash, f.lbReq.HasHash = rt.Hasher.Hash(h, info.DownstreamRemote.Addr())
	}
	host, err := cl.Pick(&f.lbReq)
	if err != nil {
		f.localFailure(httpfilter.LocalReply{Status: 503, Flags: httpfilter.FlagNoHealthyUpstream, Details: "no_healthy_upstream"})
		return httpfilter.HeadersStopIteration
	}
	f.host = host
	info.UpstreamHost = host.Address
	host.Begin()
	f.stats = cl.Stats
	f.stats.UpstreamRqTotal.Inc()
	f.stats.UpstreamRqActive.Inc()
	info.UpstreamAttempts = 1
	if ut := info.UpstreamTracer; ut != nil {
		ut.UpstreamTry(h, host.Address)
	}
	f.rewrite(h)
	if len(f.mutations) > 0 {
		f.mutateRequest(h)
	}
	if upgrade != "" {
		f.tunnel(tn, upgrade, endStream)
		return httpfilter.HeadersStopIteration
	}
	if len(rt.Mirrors) > 0 {
		f.startShadow(h, endStream)
	}
	if info.Protocol == protoHTTP2 {
		if sw, ok := f.cb.(streamWatcher); ok {
			f.ctx = sw.Context()
		}
	} else if info.Protocol == protoHTTP11 || info.Protocol == protoHTTP10 {
		f.pw, _ = f.cb.(peerWatcher)
	}
	if f.rp == nil && cl.Cfg.Protocol != "http1" {
		// A retry route picks the protocol per try (run).
		proto, err := f.upstreamProtocol()
		if err != nil {
			if !overflowed(err) {
				f.recordFailure(err)
			}
			f.connectFailed(err)
			return httpfilter.HeadersStopIteration
		}
		if proto == pool.HTTP2 {
			f.startH2(endStream)
			return httpfilter.HeadersStopIteration
		}
	}
	f.framing, f.replayable = http1.NoBody, false
	f.contentLen = -1
	if endStream {
		f.replayable = replayable(h)
	} else if v := h.Get("content-length"); v != nil {
		f.framing = http1.ContentLength
		f.contentLen, _ = strconv.ParseInt(string(v), 10, 64)
	} else {
		f.framing = http1.Chunked
	}
	if f.rp != nil {
		if endStream {
			f.run()
		} else {
			f.buffering = true
		}
		return httpfilter.HeadersStopIteration
	}
	if !f.connect(f.started) {
		return httpfilter.HeadersStopIteration
	}
	if endStream {
		f.exchangeAt(f.started)
	}
	return httpfilter.HeadersStopIteration
}

// connect checks out a connection to f.host and writes the request head
// into its buffer; on failure it answers locally and reports false. now is
// the present as the caller last read the clock.
func (f *filter) connect(now time.Time) bool {
	uc, err := f.getConn(now)
	if err != nil {
		if !overflowed(err) {
			f.recordFailure(err)
		}
		f.connectFailed(err)
		return false
	}
	f.uc = uc
	if f.ctx != nil || f.pw != nil {
		f.watch(uc)
	}
	uc.W = http1.AppendRequestHead(uc.W[:0], f.req, f.framing, f.contentLen, true)
	f.headLen = len(uc.W)
	return true
}

func (f *filter) DecodeData(b *buffer.Buffer, endStream bool) httpfilter.DataStatus {
	if f.shadow != nil {
		f.shadowData(b, endStream)
	}
	if f.h2 != nil {
		f.decodeDataH2(b, endStream)
		return httpfilter.DataStopNoBuffer
	}
	if f.buffering {
		f.reqBody = append(f.reqBody, b.Bytes()...)
		switch {
		case len(f.reqBody) > f.rp.BodyLimit:
			// Too big to replay: send what we have, stream the rest.
			if f.stream() && endStream {
				f.endStreamed()
			}
		case endStream:
			f.buffering = false
			f.run()
		}
		return httpfilter.DataStopNoBuffer
	}
	if f.uc == nil {
		return httpfilter.DataStopNoBuffer
	}
	data := b.Bytes()
	if f.framing == http1.Chunked {
		f.uc.W = http1.AppendChunk(f.uc.W, data)
		if endStream {
			f.uc.W = http1.AppendLastChunk(f.uc.W, nil)
		}
	} else {
		f.uc.W = append(f.uc.W, data...)
	}
	if endStream {
		f.exchange()
	} else {
		// What the client sent goes on now: it may wait for an answer
		// before it sends more (a streamed request).
		f.send()
	}
	return httpfilter.DataStopNoBuffer
}

func (f *filter) DecodeTrailers(t *httpfilter.Headers) httpfilter.TrailersStatus {
	if f.shadow != nil {
		f.shadowTrailers()
	}
	if f.buffering {
		f.stream() // trailers are not replayed: no retry
	}
	if f.h2 != nil {
		f.decodeTrailersH2(t)
		return httpfilter.TrailersStopIteration
	}
	if f.uc == nil {
		return httpfilter.TrailersStopIteration
	}
	if f.framing == http1.Chunked {
		f.uc.W = http1.AppendLastChunk(f.uc.W, t)
	}
	f.exchange()
	return httpfilter.TrailersStopIteration
}

func (f *filter) OnDestroy() {
	f.unwatch()
	f.closeH2()
	if f.uc != nil { // the exchange did not finish: the connection's state is unknown
		f.uc.Close()
	}
	if f.host != nil {
		f.host.End()
		f.stats.UpstreamRqActive.Dec()
	}
	if f.retryHeld {
		f.cluster.Record.PriorityBreaker(f.route.Priority, hoststate.Retries).Release()
	}
	if f.rqHeld {
		f.cluster.Record.PriorityBreaker(f.route.Priority, hoststate.Requests).Release()
	}
	f.resp.Headers.Reset()
	// The connection manager writes the access log, which may print the
	// rewritten path in pathBuf, before it destroys the filters.
	*f = filter{pathBuf: f.pathBuf[:0], svcTime: f.svcTime[:0], resp: f.resp, reqBody: f.reqBody[:0], tried: f.tried[:0],
		codes: f.codes[:0], expBuf: f.expBuf[:0], grpcBuf: f.grpcBuf[:0]}
	filterPool.Put(f)
}

// send writes what is buffered for the upstream. After a write error the
// rest of the request is dropped; exchange still reads an early response,
// also one that stopped the write (pool.Conn.WriteBody).
func (f *filter) send() {
	if f.writeErr != nil || len(f.uc.W) == 0 {
		return
	}
	_, f.writeErr = f.uc.WriteBody(f.uc.W)
	f.sentEarly = true
	f.uc.W = f.uc.W[:0]
}

// exchange sends what is buffered for the upstream (the end of the
// request), reads the response and passes it downstream. On return f.uc is
// back in the pool or closed.
func (f *filter) exchange() { f.exchangeAt(clock.Now()) }

// exchangeAt is exchange with sent, the time the exchange counts from: the
// caller's last clock read. For a request sent right after DecodeHeaders
// that is the request's start, before the connection was checked out (or
// dialled): the route timeout covers a connect too, as Envoy's does (it
// starts once the downstream request is complete).
func (f *filter) exchangeAt(sent time.Time) {
	uc := f.uc
	deadline := time.Time{}
	if f.timeout > 0 {
		deadline = sent.Add(f.timeout)
	}
	f.tryDeadline = deadline
	deadline = f.idleDeadlineAt(deadline, sent)
	// Only reads carry the route timeout; a pooled connection keeps its
	// stale read deadline until the next exchange sets one. The timeout
	// may fire up to pool.DeadlineSlack late: a busy connection then does
	// not update its timer for every request.
	_ = uc.SetReadDeadlineNear(deadline)
	// The request's last bytes are written by the first read of the
	// response (pool.Conn.WriteOnRead): no read is tried before the
	// answer can be there.
	if f.writeErr == nil {
		if f.sentEarly {
			// Part of the request went before: the upstream may have
			// answered already (an early 413), which the wait of
			// WriteOnRead, for bytes arriving after it, would miss
			// until the route timeout. Then the rest of the request
			// is not sent and the connection not reused, as Envoy
			// resets an upstream request whose response ended first.
			if uc.Answered() {
				f.writeErr = pool.ErrEarlyResponse
			}
			f.send()
		} else {
			uc.WriteOnRead(uc.W)
		}
	}
	err := f.readHead()
	if werr := uc.WriteErr(); werr != nil && f.writeErr == nil {
		f.writeErr = werr
	}
	uc.W = uc.W[:0]
	if err != nil && f.retryable(err) {
		err = f.retry(deadline)
		if err != nil && overflowed(err) {
			f.connectFailed(err) // no host failed: not recorded
			return
		}
	}
	if err != nil && f.streamIdleTimedOut(err) {
		return
	}
	if err != nil {
		f.recordFailure(err)
		f.fail(err, false)
		return
	}
	f.recordStatus()
	f.deliver(sent)
}

// deliver passes the response whose head f.resp holds downstream, then
// returns f.uc to the pool or closes it.
func (f *filter) deliver(sent time.Time) {
	uc := f.uc
	info := f.cb.Info()
	info.ResponseCode = f.resp.Headers.Status
	f.stats.Response(f.resp.Headers.Status)
	resp := &f.resp
	end := resp.Framing == http1.NoBody || (resp.Framing == http1.ContentLength && resp.ContentLength == 0)
	now := clock.Now()
	info.UpstreamRequestSent, info.UpstreamResponseStart = sent, now
	f.svcTime = strconv.AppendInt(f.svcTime[:0], now.Sub(f.started).Milliseconds(), 10)
	resp.Headers.SetBytes(hdrUpstreamServiceTime, f.svcTime)
	if len(f.mutations) > 0 {
		f.mutateResponse(&resp.Headers)
	}
	if f.cb.EncodeHeaders(&resp.Headers, end) != nil {
		return // downstream gone; OnDestroy closes uc
	}
	if !end {
		if !f.copyBody() {
			return
		}
		now = clock.Now()
	}
	f.stats.UpstreamRqTime.Record(now.Sub(sent))
	uc.Requests++
	reuse := resp.KeepAlive && f.writeErr == nil
	if max := f.cluster.Cfg.MaxRequestsPerConnection; max > 0 && uc.Requests >= max {
		reuse = false
	}
	if !f.unwatch() {
		reuse = false // the watch fired: the connection has a past deadline
	}
	if reuse {
		f.pool().PutAt(uc, now)
	} else {
		uc.Close()
	}
	f.uc = nil
}

// errTooManyInformational is an upstream's endless stream of 1xx heads.
var errTooManyInformational = &http1.Error{Status: 502, Reason: "informational responses over the head size limit"}

// readHead reads the final response head, forwarding informational ones.
// The 1xx heads of one response count together against the head size
// limit, so that an upstream sending them without end (a 100 Continue or
// 103 Early Hints flood) gets a 502 instead of holding the stream until
// the route timeout.
func (f *filter) readHead() error {
	informational := 0
	for {
		if err := f.uc.R.ReadResponse(&f.resp, f.req.Method, nil); err != nil {
			return err
		}
		st := f.resp.Headers.Status
		if st < 200 {
			if informational += f.resp.HeadBytes; informational > http1.DefaultMaxHeaderBytes {
				return errTooManyInformational
			}
		}
		switch {
		case st >= 200:
			return nil
		case st == 101 && f.upgrading:
			return nil
		case st == 101:
			return &http1.Error{Status: 502, Reason: "unexpected 101 switching protocols"}
		case st == 100:
			// sluice answered any Expect: 100-continue itself
		default:
			if f.cb.Encode1xxHeaders(&f.resp.Headers) != nil {
				return errDownstreamGone
			}
		}
	}
}

var errDownstreamGone = errors.New("router: downstream gone")

// retryable: a request that failed on a reused connection before any
// response byte arrived, with no body and an idempotent method, is safe to
// send again on a fresh connection (the upstream closed an idle keep-alive
// connection as we sent on it).
func (f *filter) retryable(err error) bool {
	if !f.uc.Reused || !f.replayable || isTimeout(err) {
		return false
	}
	var pe *http1.Error
	return !errors.As(err, &pe) && len(f.uc.R.Buffered()) == 0
}

// retry sends the request again, on a new connection, after a stale reuse
// (retryable); it returns the new try's readHead error. The new connection
// is had as any request's: if max_connections refuses it
// (the pool still holds other connections while other pools hold the
// breaker's other units), the request waits for room, pending, as in
// Envoy, holding a unit of max_pending_requests (upstream_rq_pending_overflow
// and an error overflowed reports when there is none), until the route
// timeout (pool.ErrPendingTimeout).
func (f *filter) retry(deadline time.Time) error {
	f.uc.Close()
	f.uc = nil
	p := f.pool()
	uc, err := p.Dial(context.Background())
	if errors.Is(err, pool.ErrOverflow) {
		uc, err = f.waitDial(p)
	}
	if err != nil {
		return err
	}
	f.uc = uc
	if f.stopWatch != nil || f.peerWatching {
		f.unwatch()
		f.watch(uc)
	}
	uc.W = http1.AppendRequestHead(uc.W[:0], f.req, http1.NoBody, -1, true)
	f.writeErr = nil
	f.send()
	_ = uc.SetReadDeadline(deadline)
	return f.readHead()
}

// copyBody streams the response body downstream. It reports whether the
// body ended cleanly.
func (f *filter) copyBody() bool {
	resp := &f.resp
	body := f.uc.R.BodyReader(resp.Framing, resp.ContentLength)
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	remaining := resp.ContentLength
	tryIdle := false // the read deadline is per_try_idle_timeout's
	for {
		if len(f.uc.R.Buffered()) == 0 {
			f.data.Set(nil)
			if f.cb.EncodeData(&f.data, false) != nil { // flush what is pending before blocking
				return false
			}
		}
		if rp := f.rp; rp != nil && rp.PerTryIdleTimeout > 0 {
			d, end := time.Now().Add(rp.PerTryIdleTimeout), f.tryDeadline
			if end.IsZero() {
				end = f.deadline
			}
			tryIdle = end.IsZero() || !end.Before(d)
			if !tryIdle {
				d = end
			}
			_ = f.uc.SetReadDeadline(f.idleDeadline(d))
		} else if f.streamIdle > 0 && len(f.uc.R.Buffered()) == 0 {
			d := f.tryDeadline
			if d.IsZero() {
				d = f.deadline
			}
			_ = f.uc.SetReadDeadline(f.idleDeadline(d))
		}
		n, err := body.Read(buf)
		if n > 0 {
			end := false
			if resp.Framing == http1.ContentLength {
				remaining -= int64(n)
				end = remaining == 0
			}
			f.data.Set(buf[:n])
			if f.cb.EncodeData(&f.data, end) != nil {
				return false
			}
			if end {
				return true
			}
		}
		if err == io.EOF {
			if t := body.Trailers(); t != nil && t.Len() > 0 {
				return f.cb.EncodeTrailers(t) == nil
			}
			f.data.Set(nil)
			return f.cb.EncodeData(&f.data, true) == nil
		}
		if err != nil {
			if !f.streamIdleTimedOut(err) {
				if tryIdle && !f.idleBound && isTimeout(err) && !f.downstreamCancelled() {
					f.cluster.Overflow.PerTryIdleTimeout.Inc()
					f.perTryTimedOut = true
				}
				f.fail(err, true)
			}
			return false
		}
	}
}

// idleDeadline returns the earlier of d (zero: none) and now +
// stream_idle_timeout, and records in f.idleBound which one it is.
func (f *filter) idleDeadline(d time.Time) time.Time {
	if f.streamIdle <= 0 {
		f.idleBound = false
		return d
	}
	return f.idleDeadlineAt(d, time.Now())
}

// idleDeadlineAt is idleDeadline with the clock read by the caller just now.
func (f *filter) idleDeadlineAt(d, now time.Time) time.Time {
	f.idleBound = false
	if f.streamIdle <= 0 {
		return d
	}
	if i := now.Add(f.streamIdle); d.IsZero() || i.Before(d) {
		f.idleBound = true
		return i
	}
	return d
}

// streamIdleTimedOut reports whether err is the stream idle timeout firing
// on an upstream read, and then ends the stream as the manager does: 408
// before the response started, a reset after (flag SI). The upstream
// connection is closed by OnDestroy. It is not an upstream failure: outlier
// detection and retries do not see it.
func (f *filter) streamIdleTimedOut(err error) bool {
	if !f.idleBound || !isTimeout(err) || f.downstreamCancelled() {
		return false
	}
	f.idleReply()
	return true
}

// idleReply ends the stream for stream_idle_timeout: 408 before the
// response started, a reset after (flag SI).
func (f *filter) idleReply() {
	f.reply(httpfilter.LocalReply{Status: 408, Flags: httpfilter.FlagStreamIdleTimeout, Details: "stream_idle_timeout"})
}

// fail ends the stream after an upstream error: a local reply before the
// response started, a reset after.
func (f *filter) fail(err error, started bool) {
	if errors.Is(err, errDownstreamGone) {
		return
	}
	if f.downstreamCancelled() {
		f.cb.Info().ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
		return
	}
	r := httpfilter.LocalReply{Status: 503, Flags: httpfilter.FlagUpstreamConnectionTermination,
		Details: "upstream_reset_before_response_started{connection_termination}"}
	var pe *http1.Error
	switch {
	case isTimeout(err):
		r = httpfilter.LocalReply{Status: f.timeoutStatus(), Flags: httpfilter.FlagUpstreamRequestTimeout, Details: "upstream_response_timeout"}
		if f.stats != nil && !f.perTryTimedOut {
			// The route timeout's counter: as in Envoy, a per-try
			// timeout counts in upstream_rq_per_try_(idle_)timeout only.
			f.stats.UpstreamRqTimeout.Inc()
		}
	case errors.As(err, &pe):
		r = httpfilter.LocalReply{Status: 502, Flags: httpfilter.FlagUpstreamProtocolError, Details: "upstream_protocol_error"}
	case errors.Is(err, errUpstreamReset), errors.Is(err, errRefused):
		r.Details = "upstream_reset_before_response_started{remote_reset}"
		if started {
			r.Details = "upstream_reset_after_response_started{remote_reset}"
		}
	case errors.Is(err, pool.ErrConnect):
		r = httpfilter.LocalReply{Status: 503, Flags: httpfilter.FlagUpstreamConnectionFailure,
			Details: "upstream_reset_before_response_started{connection_failure}"}
	case started:
		r.Details = "upstream_reset_after_response_started"
	}
	if ce := f.log.Check(zap.DebugLevel, "upstream request failed"); ce != nil {
		info := f.cb.Info()
		ce.Write(zap.Uint64("conn", f.cb.ConnectionID()), zap.Uint64("stream", f.cb.StreamID()),
			zap.String("cluster", info.UpstreamCluster), zap.String("host", info.UpstreamHost),
			zap.Int("status", r.Status), zap.String("flags", r.Flags.String()), zap.Error(err))
	}
	if started {
		f.reply(r) // a reset: the response's status was counted when it came
		return
	}
	f.localFailure(r)
}

// localFailure sends r, the router's own answer to a request it could not
// get a response for (no healthy host, overflow, connect failure, reset,
// timeout, protocol error), and counts its status in the cluster's
// upstream_rq_<N>xx as if the upstream had sent it: Envoy's router charges
// these failures to the cluster's response-code stats too
// (sendNoHealthyUpstreamResponse, chargeUpstreamAbort). A failure after the
// response started, a retried one and one the downstream caused are not
// counted, nor is any of them sampled in upstream_rq_time, which, as in
// Envoy, times upstream responses only.
func (f *filter) localFailure(r httpfilter.LocalReply) {
	f.cluster.Stats.Response(r.Status)
	f.reply(r)
}

// watch aborts the exchange on uc when the downstream HTTP/2 stream is
// reset, or the HTTP/1.1 client is found gone: the blocked upstream read
// or write fails at once.
func (f *filter) watch(uc *pool.Conn) {
	// A connection the watch fired on is not reused (deliver).
	if f.pw != nil {
		f.pw.WatchPeer(&uc.Abort)
		f.peerWatching = true
		return
	}
	f.stopWatch = f.cb.(streamWatcher).AfterReset(uc.Abort) // f.ctx came from it
}

// unwatch ends the watch on the current upstream connection and reports
// whether it had not fired (a connection it fired on has a past deadline).
func (f *filter) unwatch() bool {
	ok := true
	if f.stopWatch != nil {
		ok = f.stopWatch()
		f.stopWatch = nil
	}
	if f.peerWatching {
		f.peerWatching = false
		ok = !f.pw.UnwatchPeer() && ok
	}
	return ok
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// replayable reports whether the method is idempotent (RFC 9110 §9.2.2) or
// the request carries an idempotency key.
func replayable(h *httpfilter.RequestHeaders) bool {
	switch string(h.Method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return h.Has("idempotency-key") || h.Has("x-idempotency-key")
}

// rewrite applies the route's path and host rewrites.
func (f *filter) rewrite(h *httpfilter.RequestHeaders) {
	rt := f.route
	if rt.pathRewrite {
		f.rewritePath(h)
	}
	switch {
	case rt.hostRewrite != nil:
		h.Authority = rt.hostRewrite
	case rt.autoHost:
		f.autoHostRewrite()
	}
}

// rewritePath applies the route's prefix_rewrite or regex_rewrite to the
// request's path, and records the original in x-envoy-original-path, as
// Envoy's router does for every request of a route with either.
func (f *filter) rewritePath(h *httpfilter.RequestHeaders) {
	rt, orig := f.route, h.Path
	if rt.regexRewrite != nil {
		path, rest := splitPath(orig)
		f.pathBuf = append(append(f.pathBuf[:0], rt.regexRewrite.ReplaceAll(path, rt.regexTmpl)...), rest...)
	} else {
		f.pathBuf = append(append(f.pathBuf[:0], rt.PrefixRewrite...), orig[len(rt.prefix):]...)
	}
	h.Path = f.pathBuf
	// orig stays valid for the stream: it is the codec's (or the filter
	// that set it), never f.pathBuf.
	h.SetBytes(hdrOriginalPath, orig)
}

// autoHostRewrite makes the request's authority the name of f.host
// (auto_host_rewrite); a host without one leaves it alone.
func (f *filter) autoHostRewrite() {
	if n := f.host.Hostname; len(n) > 0 {
		f.req.Authority = n
	}
}

// splitPath splits a request target into its path and the rest: the query
// and fragment, from the first '?' or '#' on.
func splitPath(target []byte) (path, rest []byte) {
	for i, c := range target {
		if c == '?' || c == '#' {
			return target[:i], target[i:]
		}
	}
	return target, nil
}

func redirectReply(rt *Route, h *httpfilter.RequestHeaders) httpfilter.LocalReply {
	rd := rt.Redirect
	scheme := string(h.Scheme)
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	if rd.HTTPSRedirect {
		scheme = "https"
	}
	host := string(h.Authority)
	if rd.Host != "" {
		host = rd.Host
	}
	if rd.Port != 0 {
		host = withPort(host, rd.Port)
	}
	p, q := splitPath(h.Path)
	path, query := string(p), string(q)
	switch {
	case rd.Path != "":
		path = rd.Path
		if indexByte(rd.Path, '?') >= 0 {
			query = "" // the redirect's own query replaces the request's
		}
	case rd.PrefixRewrite != "":
		path = rd.PrefixRewrite + path[len(rt.prefix):]
	case rt.redirectRegex != nil:
		path = rt.redirectRegex.ReplaceAllString(path, string(rt.redirectTmpl))
	}
	if rd.StripQuery {
		query = ""
	}
	status := rd.Status
	if status == 0 {
		status = 301
	}
	return httpfilter.LocalReply{
		Status:  status,
		Headers: []httpfilter.Field{{Name: []byte("location"), Value: []byte(scheme + "://" + host + path + query)}},
		Details: "redirect",
	}
}

// withPort returns authority with its port (if any) replaced by port.
func withPort(authority string, port int) string {
	host := authority
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && strings.IndexByte(authority[i:], ']') < 0 {
		host = authority[:i]
	}
	return host + ":" + strconv.Itoa(port)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// Upgrades (WebSocket) and CONNECT tunnels.
//
// A request asking for an upgrade the route allows goes upstream on a fresh
// connection, never pooled afterwards. On the upstream's 101 the stream's
// Tunneler writes the 101 downstream and copies bytes both ways until both
// sides have closed; any other answer is passed on as a plain response. A
// CONNECT is terminated here (Envoy's connect_config): sluice connects to a
// host of the route's cluster, answers 200 and tunnels the raw bytes. An
// upgrade the route does not allow is answered 403, as Envoy does.

// upgradeRequested returns the stream's Tunneler and the upgrade its
// request asks for ("" for none, or when the stream cannot tunnel).
func (f *filter) upgradeRequested() (httpfilter.Tunneler, string) {
	tn, ok := f.cb.(httpfilter.Tunneler)
	if !ok {
		return nil, ""
	}
	return tn, tn.UpgradeRequested()
}

// allowsUpgrade reports whether the route allows the upgrade: "CONNECT" by
// exact name, a WebSocket upgrade (the Upgrade field's value) by
// case-insensitive match.
func (r *Route) allowsUpgrade(upgrade string) bool {
	for _, u := range r.Upgrades {
		if u == upgrade || (upgrade != "CONNECT" && u != "CONNECT" && strings.EqualFold(u, upgrade)) {
			return true
		}
	}
	return false
}

var (
	hdrConnection = []byte("connection")
	// hdrUpstreamServiceTime and hdrExpectedRqTimeout are set without a
	// copy (Headers.SetBytes).
	hdrUpstreamServiceTime = []byte("x-envoy-upstream-service-time")
	hdrExpectedRqTimeout   = []byte("x-envoy-expected-rq-timeout-ms")
	hdrOriginalPath        = []byte("x-envoy-original-path")
	hdrUpgrade             = []byte("upgrade")
	// hdrRateLimited marks an upstream's rate-limited response, which is
	// not retried.
	hdrRateLimited = "x-envoy-ratelimited"
	tokenUpgrade   = []byte("upgrade")
)

// tunnel serves an allowed upgrade or CONNECT request.
func (f *filter) tunnel(tn httpfilter.Tunneler, upgrade string, endStream bool) {
	if !endStream {
		f.reply(httpfilter.LocalReply{Status: 400, Flags: httpfilter.FlagDownstreamProtocolError,
			Details: "upgrade_with_body"})
		return
	}
	uc, err := f.pool().Dial(context.Background())
	if err != nil {
		if !errors.Is(err, pool.ErrOverflow) {
			f.recordFailure(err)
		}
		f.connectFailed(err)
		return
	}
	f.uc = uc
	if upgrade == "CONNECT" {
		f.resp.Headers.Reset()
		f.resp.Headers.Status = 200
		f.openTunnel(tn)
		return
	}
	h := f.req
	h.AddBytes(hdrConnection, tokenUpgrade)
	h.Add("upgrade", upgrade)
	uc.W = http1.AppendRequestHead(uc.W[:0], h, http1.NoBody, -1, true)
	f.send()
	sent := time.Now()
	if f.timeout > 0 {
		_ = uc.SetReadDeadline(sent.Add(f.timeout))
	}
	f.upgrading = true
	if err := f.readHead(); err != nil {
		f.recordFailure(err)
		f.fail(err, false)
		return
	}
	f.recordStatus()
	if f.resp.Headers.Status != 101 {
		f.resp.KeepAlive = false // the connection was opened for the upgrade
		f.deliver(sent)
		return
	}
	proto := f.resp.Upgrade
	if len(proto) == 0 {
		proto = []byte(upgrade)
	}
	f.resp.Headers.AddBytes(hdrConnection, tokenUpgrade)
	f.resp.Headers.AddBytes(hdrUpgrade, proto)
	f.openTunnel(tn)
}

// openTunnel hands the response head in f.resp and f.uc to the stream's
// Tunneler, then closes f.uc.
func (f *filter) openTunnel(tn httpfilter.Tunneler) {
	uc := f.uc
	info := f.cb.Info()
	info.ResponseCode = f.resp.Headers.Status
	f.stats.Response(f.resp.Headers.Status)
	_ = uc.SetDeadline(time.Time{})
	f.mutateResponse(&f.resp.Headers)
	up := &upstreamTunnel{uc: uc, body: uc.R.BodyReader(http1.UntilClose, -1)}
	if err := tn.Tunnel(&f.resp.Headers, up); err != nil && !errors.Is(err, errDownstreamGone) {
		if ce := f.log.Check(zap.DebugLevel, "tunnel not opened"); ce != nil {
			ce.Write(zap.Uint64("conn", f.cb.ConnectionID()), zap.Uint64("stream", f.cb.StreamID()), zap.Error(err))
		}
	}
	f.uc = nil
	uc.Close()
}

// upstreamTunnel is an upstream connection as httpfilter.TunnelConn: reads
// go through the response reader (which may hold bytes read past the 101
// head), Close only closes the socket (pool.Conn.Close, which releases the
// reader, runs after the tunnel is over).
type upstreamTunnel struct {
	uc   *pool.Conn
	body io.Reader
}

func (t *upstreamTunnel) Read(p []byte) (int, error)  { return t.body.Read(p) }
func (t *upstreamTunnel) Write(p []byte) (int, error) { return t.uc.Conn.Write(p) }
func (t *upstreamTunnel) Close() error                { return t.uc.Conn.Close() }

func (t *upstreamTunnel) CloseWrite() error {
	if cw, ok := t.uc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("router: upstream connection cannot half-close")
}
