package router

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/outlier"
	"github.com/sluice-proxy/sluice/gateway/pool"
)

// Retries, circuit breakers and outlier recording of the upstream exchange
// (HTTP/1 here, HTTP/2 tries in tryH2). Everything here runs on the
// stream's goroutine.

// errPendingOverflow: the cluster's max_pending_requests breaker is open.
var errPendingOverflow = errors.New("router: max_pending_requests circuit breaker open")

// connectFailureConds are the retry conditions a connect failure meets:
// as in Envoy, connect-failure, and reset, 5xx and gateway-error, which
// take any reset before the response (a connection that could not be had
// is one). HTTP/2 tries (tryH2) add the same to their reset conditions.
const connectFailureConds = RetryConnectFailure | RetryReset | Retry5xx | RetryGatewayError

// retrySelectAttempts is how many picks a retry makes to find a host not
// tried yet (the previous_hosts predicate).
const retrySelectAttempts = 3

// getConn checks out a connection to f.host. An idle connection is taken
// at once; a request that must wait for one, while a new connection is
// made or, when the priority's connections are at max_connections, until a
// connection is free or may be opened, is pending as in Envoy: it holds a
// unit of the cluster's pending-requests breaker until the connection is
// had, the route timeout passes or the downstream goes away. now is the
// present as the caller last read the clock (a pooled connection's idle
// time is judged by it).
func (f *filter) getConn(now time.Time) (*pool.Conn, error) {
	p := f.pool()
	if uc := p.IdleAt(now); uc != nil {
		return uc, nil
	}
	cl := f.cluster
	pb := cl.Record.PriorityBreaker(f.route.Priority, hoststate.Pending)
	if !pb.TryAcquire(cl.LimitsOf(f.route.Priority).Pending) {
		cl.Overflow.RqPending.Inc()
		return nil, errPendingOverflow
	}
	uc, err := p.GetAt(context.Background(), now)
	if errors.Is(err, pool.ErrOverflow) {
		ctx, cancel := f.pendingContext()
		uc, err = p.WaitGet(ctx)
		cancel()
	}
	pb.Release()
	return uc, err
}

// waitDial waits, pending, for room under max_connections to open a new
// connection from p, as getConn waits for any connection.
func (f *filter) waitDial(p *pool.Pool) (*pool.Conn, error) {
	cl := f.cluster
	pb := cl.Record.PriorityBreaker(f.route.Priority, hoststate.Pending)
	if !pb.TryAcquire(cl.LimitsOf(f.route.Priority).Pending) {
		cl.Overflow.RqPending.Inc()
		return nil, errPendingOverflow
	}
	ctx, cancel := f.pendingContext()
	uc, err := p.WaitDial(ctx)
	cancel()
	pb.Release()
	return uc, err
}

// pendingContext bounds a wait for a connection: the route's deadline and,
// on HTTP/2 and HTTP/3, the downstream stream's life.
func (f *filter) pendingContext() (context.Context, context.CancelFunc) {
	ctx := context.Background()
	if f.ctx != nil {
		ctx = f.ctx
	}
	if f.deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, f.deadline)
}

// overflowed reports whether err is a circuit breaker refusing a
// connection (max_pending_requests, or max_connections of the route's
// priority) or a request that waited for one until its timeout. It is not
// a failure of the host (outlier detection does not see it) and is not
// retried.
func overflowed(err error) bool {
	return errors.Is(err, errPendingOverflow) || errors.Is(err, pool.ErrOverflow) ||
		errors.Is(err, pool.ErrPendingTimeout)
}

// connectFailed answers a request whose connection could not be had:
// 503 UO when a breaker refused it, 504 UT when the route timeout passed
// while it waited for one (nothing when the downstream went away), 503 UF
// when the connect failed (the caller has recorded that failure).
func (f *filter) connectFailed(err error) {
	if errors.Is(err, pool.ErrPendingTimeout) {
		if f.downstreamCancelled() {
			f.cb.Info().ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
			return
		}
		if errors.Is(err, errStreamIdle) {
			f.idleReply()
			return
		}
		f.stats.UpstreamRqTimeout.Inc()
		f.localFailure(httpfilter.LocalReply{Status: f.timeoutStatus(), Flags: httpfilter.FlagUpstreamRequestTimeout, Details: "upstream_response_timeout"})
		return
	}
	if overflowed(err) {
		f.localFailure(httpfilter.LocalReply{Status: 503, Flags: httpfilter.FlagUpstreamOverflow, Details: "upstream_rq_overflow"})
		return
	}
	f.localFailure(httpfilter.LocalReply{Status: 503, Flags: httpfilter.FlagUpstreamConnectionFailure,
		Details: "upstream_reset_before_response_started{connection_failure}"})
}

// stream gives up buffering a retry route's request that outgrew the
// buffer: it connects, sends the head and what was buffered, and the rest
// streams as for any route. It reports whether a connection was had.
func (f *filter) stream() bool {
	f.buffering, f.noRetry = false, true
	if f.cluster.Cfg.Protocol != "http1" {
		proto, err := f.upstreamProtocol()
		if err != nil {
			if !overflowed(err) {
				f.recordFailure(err)
			}
			f.connectFailed(err)
			return false
		}
		if proto == pool.HTTP2 {
			if f.startH2(false); f.h2 == nil {
				return false
			}
			if len(f.reqBody) > 0 {
				_, _ = f.h2.pw.Write(f.reqBody) // an error shows in the RoundTrip result
			}
			f.reqBody = f.reqBody[:0]
			return true
		}
	}
	if !f.connect(time.Now()) {
		return false
	}
	if f.framing == http1.Chunked {
		f.uc.W = http1.AppendChunk(f.uc.W, f.reqBody)
	} else {
		f.uc.W = append(f.uc.W, f.reqBody...)
	}
	f.reqBody = f.reqBody[:0]
	f.send()
	return true
}

// endStreamed ends a request stream() started: the last chunk, then the
// exchange.
func (f *filter) endStreamed() {
	if f.h2 != nil {
		f.h2.pw.Close()
		f.exchangeH2()
		return
	}
	if f.framing == http1.Chunked {
		f.uc.W = http1.AppendLastChunk(f.uc.W, nil)
	}
	f.exchange()
}

// run does the exchange of a complete, buffered request under the route's
// retry policy: each try sends the whole request to f.host and reads the
// response head; a failure or status the policy retries is tried again
// (after a full-jitter backoff, on another host with previous_hosts) while
// retries remain and the retry breaker allows. Nothing is retried once a
// response byte went downstream.
func (f *filter) run() {
	p := f.rp
	if f.timeout > 0 {
		// The request is complete: the route timeout runs from here, as
		// Envoy's, not from its head (a slow upload is no upstream
		// timeout).
		f.deadline = time.Now().Add(f.timeout)
	}
	for try := 0; ; try++ {
		if f.cluster.Cfg.Protocol != "http1" {
			proto, err := f.upstreamProtocol()
			if err != nil {
				if !overflowed(err) {
					f.recordFailure(err)
					if f.again(try, connectFailureConds) {
						continue
					}
				}
				f.connectFailed(err)
				return
			}
			if proto == pool.HTTP2 {
				if f.tryH2(try) {
					continue
				}
				return
			}
		}
		uc, err := f.getConn(time.Now())
		if err != nil {
			if !overflowed(err) {
				f.recordFailure(err)
				if f.again(try, connectFailureConds) {
					continue
				}
			}
			f.connectFailed(err)
			return
		}
		f.uc = uc
		if f.ctx != nil || f.pw != nil {
			f.watch(uc)
		}
		uc.W = http1.AppendRequestHead(uc.W[:0], f.req, f.framing, f.contentLen, true)
		switch f.framing {
		case http1.Chunked:
			if len(f.reqBody) > 0 {
				uc.W = http1.AppendChunk(uc.W, f.reqBody)
			}
			uc.W = http1.AppendLastChunk(uc.W, nil)
		case http1.ContentLength:
			uc.W = append(uc.W, f.reqBody...)
		}
		f.headLen = len(uc.W)
		f.writeErr = nil
		f.send()
		deadline, perTry := f.deadline, false
		if p.PerTryTimeout > 0 {
			if d := time.Now().Add(p.PerTryTimeout); deadline.IsZero() || d.Before(deadline) {
				deadline, perTry = d, true
			}
		}
		f.tryDeadline = deadline
		tryIdle := false
		if p.PerTryIdleTimeout > 0 {
			// Until the response head: no byte for that long fails the
			// try as a per-try timeout. copyBody renews it per read.
			if d := time.Now().Add(p.PerTryIdleTimeout); deadline.IsZero() || d.Before(deadline) {
				deadline, perTry, tryIdle = d, true, true
			}
		}
		deadline = f.idleDeadline(deadline)
		_ = uc.SetReadDeadline(deadline)
		sent := time.Now()
		err = f.readHead()
		if err != nil && f.retryable(err) {
			err = f.retry(deadline)
			if err != nil && overflowed(err) {
				f.connectFailed(err) // not retried, no host failed
				return
			}
		}
		if err != nil && f.streamIdleTimedOut(err) {
			return
		}
		if err != nil {
			if errors.Is(err, errDownstreamGone) {
				return
			}
			f.recordFailure(err)
			cond := RetryReset | Retry5xx | RetryGatewayError
			if isTimeout(err) {
				switch {
				case !perTry:
					cond = 0 // the route timeout: nothing left to retry in
				case tryIdle:
					f.cluster.Overflow.PerTryIdleTimeout.Inc()
				default:
					f.cluster.Overflow.PerTryTimeout.Inc()
				}
			}
			if f.again(try, cond) {
				continue
			}
			f.perTryTimedOut = perTry && isTimeout(err)
			f.fail(err, false)
			return
		}
		f.recordStatus()
		st := f.resp.Headers.Status
		if cond := retryOnStatus(p, &f.resp.Headers); cond != 0 && f.retryAllowed(try, cond) {
			f.headRead = true
			if f.again(try, cond) {
				// A response sluice does not pass on; one passed on is
				// counted by deliver.
				f.stats.Response(st)
				continue
			}
			f.headRead = false
		}
		if try > 0 {
			f.cluster.Overflow.RetryOK.Inc()
		}
		// The response is passed on: as in Envoy, per_try_timeout no
		// longer applies (per_try_idle_timeout still does), the route
		// timeout bounds the body.
		f.tryDeadline = f.deadline
		_ = f.uc.SetReadDeadline(f.idleDeadline(f.deadline))
		f.deliver(sent)
		return
	}
}

// retryOnStatus returns the retry conditions a response head meets: its
// status, and with a gRPC condition in the policy, the grpc-status it
// carries (a trailers-only gRPC response; as in Envoy, a grpc-status in
// trailers is not looked at). A response carrying x-envoy-ratelimited
// meets none: as in Envoy, an upstream's rate limiting is not retried
// (Envoy's envoy-ratelimited condition, which would, is not supported).
func retryOnStatus(p *RetryPolicy, h *httpfilter.ResponseHeaders) uint16 {
	if h.Has(hdrRateLimited) {
		return 0
	}
	status := h.Status
	var c uint16
	if status >= 500 {
		c |= Retry5xx
	}
	if status == 502 || status == 503 || status == 504 {
		c |= RetryGatewayError
	}
	if status == 409 {
		c |= RetryRetriable4xx
	}
	if slices.Contains(p.StatusCodes, status) {
		c |= RetryRetriableStatusCodes
	}
	if p.On&retryGrpc != 0 {
		c |= grpcStatusConds(h.Get("grpc-status"))
	}
	return c
}

// grpcStatusConds returns the gRPC retry condition a grpc-status value
// meets (0 for none, or for a value that is not a status code).
func grpcStatusConds(v []byte) uint16 {
	if len(v) == 0 || len(v) > 2 {
		return 0
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	switch n {
	case 1:
		return RetryGrpcCancelled
	case 4:
		return RetryGrpcDeadlineExceeded
	case 8:
		return RetryGrpcResourceExhausted
	case 13:
		return RetryGrpcInternal
	case 14:
		return RetryGrpcUnavailable
	}
	return 0
}

// retryAllowed reports whether the policy retries try (0 for the first)
// for a failure meeting cond, before breakers and deadlines are consulted.
func (f *filter) retryAllowed(try int, cond uint16) bool {
	p := f.rp
	return !f.noRetry && p.On&cond != 0 && try < p.NumRetries && !f.downstreamCancelled()
}

// backoff returns the wait before the retry after try (0 for the first):
// Envoy's full-jitter exponential backoff, uniform in [0, base × 2^try]
// capped at MaxInterval.
func (p *RetryPolicy) backoff(try int) time.Duration {
	ceiling := min(p.BaseInterval<<min(try, 20), p.MaxInterval)
	return rand.N(ceiling + 1)
}

// again decides whether try (0 for the first) is retried for a failure
// meeting cond. If so it drops the try's connection, waits the backoff,
// picks the next host and returns true.
func (f *filter) again(try int, cond uint16) bool {
	p := f.rp
	cl := f.cluster
	if !f.retryAllowed(try, cond) {
		return false
	}
	if !f.retryHeld {
		if !cl.Record.PriorityBreaker(f.route.Priority, hoststate.Retries).TryAcquire(cl.RetryLimit(f.route.Priority)) {
			cl.Overflow.RqRetry.Inc()
			return false
		}
		f.retryHeld = true
	}
	wait := p.backoff(try)
	if !f.deadline.IsZero() && time.Now().Add(wait).After(f.deadline) {
		return false
	}
	watchOK := f.unwatch()
	if f.uc != nil {
		if !f.headRead || !watchOK || !f.putBack() {
			f.uc.Close()
		}
		f.uc = nil
	}
	f.headRead, f.perTryTimedOut = false, false
	f.closeH2()
	f.resp.Headers.Reset()
	if wait > 0 {
		t := time.NewTimer(wait)
		var done <-chan struct{}
		if f.ctx != nil {
			done = f.ctx.Done()
		}
		select {
		case <-t.C:
		case <-done:
			t.Stop()
		}
	}
	cl.Overflow.Retry.Inc()
	f.nextHost()
	// Each try is an upstream request, as in Envoy (one per stream).
	f.stats.UpstreamRqTotal.Inc()
	f.cb.Info().UpstreamAttempts++
	if ut := f.cb.Info().UpstreamTracer; ut != nil {
		ut.UpstreamTry(f.req, f.host.Address)
	}
	return true
}

// putBack returns f.uc to the pool after a response that is retried
// rather than passed on, when that response has ended within the bytes
// already read (a 503 usually comes in one segment) and the connection
// stays alive; it reports whether it did. A body still on the way is not
// waited for: the connection is closed instead.
func (f *filter) putBack() bool {
	r, uc := &f.resp, f.uc
	if !r.KeepAlive || f.writeErr != nil {
		return false
	}
	switch r.Framing {
	case http1.NoBody:
	case http1.ContentLength:
		if int64(len(uc.R.Buffered())) < r.ContentLength {
			return false
		}
		if _, err := io.Copy(io.Discard, uc.R.BodyReader(r.Framing, r.ContentLength)); err != nil {
			return false
		}
	default:
		return false
	}
	uc.Requests++
	if max := f.cluster.Cfg.MaxRequestsPerConnection; len(uc.R.Buffered()) > 0 || max > 0 && uc.Requests >= max {
		return false
	}
	f.pool().Put(uc)
	return true
}

// nextHost picks the host of a retry, avoiding the hosts tried so far
// when the policy has the previous_hosts predicate.
func (f *filter) nextHost() {
	f.tried = append(f.tried, f.host)
	var next *cluster.Host
	for k := range retrySelectAttempts {
		if f.rp.PreviousHosts {
			// A hash-based policy would map the hash to a tried host
			// again: ask it for the next distinct ones.
			f.lbReq.Attempt = uint32(len(f.tried) + k)
		}
		h, err := f.cluster.Pick(&f.lbReq)
		if err != nil {
			break
		}
		next = h
		if !f.rp.PreviousHosts || !slices.Contains(f.tried, h) {
			break
		}
	}
	f.lbReq.Attempt = 0
	if next == nil || next == f.host {
		if f.host.State != nil {
			f.host.State.CountRequest() // the same host's rq_total counts the try
		}
		return
	}
	f.host.End()
	next.Begin()
	f.host = next
	f.cb.Info().UpstreamHost = next.Address
	if f.route.autoHost {
		f.autoHostRewrite()
	}
}

// recordFailure records a local-origin failure (connect failure, timeout,
// reset) of f.host for outlier detection; a malformed response counts as
// a 502 from the host.
func (f *filter) recordFailure(err error) {
	if errors.Is(err, errDownstreamGone) || f.downstreamCancelled() {
		return
	}
	if f.host.State != nil {
		f.host.State.CountOutcome(false)
	}
	rec := f.cluster.Outlier
	if rec == nil {
		return
	}
	var pe *http1.Error
	now := time.Now()
	var why outlier.Reason
	if errors.As(err, &pe) {
		why = rec.Status(f.host.State, 502, now)
	} else {
		why = rec.LocalOrigin(f.host.State, true, now)
	}
	f.logEjection(why)
}

// recordStatus records the response status of f.host for outlier
// detection, and fails the host at once if the response carries
// x-envoy-immediate-health-check-fail and its cluster is health-checked.
func (f *filter) recordStatus() {
	cl := f.cluster
	if f.host.State != nil {
		f.host.State.CountOutcome(f.resp.Headers.Status < 500)
	}
	if rec := cl.Outlier; rec != nil {
		now := time.Now()
		rec.LocalOrigin(f.host.State, false, now)
		f.logEjection(rec.Status(f.host.State, f.resp.Headers.Status, now))
	}
	if len(cl.Cfg.HealthChecks) > 0 && f.resp.Headers.Has("x-envoy-immediate-health-check-fail") {
		f.host.State.SetFlags(hoststate.FlagFailedActiveHC | hoststate.FlagImmediateHCFail)
		f.log.Info("host failed by x-envoy-immediate-health-check-fail", zap.String("cluster", cl.Name),
			zap.String("host", f.host.Address))
	}
}

// logEjection logs an ejection a recorded result caused (why is zero for
// none).
func (f *filter) logEjection(why outlier.Reason) {
	if why != 0 {
		f.log.Info("outlier ejected host", zap.String("cluster", f.cluster.Name),
			zap.String("host", f.host.Address), zap.Stringer("reason", why))
	}
}
