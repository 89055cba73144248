package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/pool"
)

// Upstream HTTP/2.
//
// For a cluster with protocol http2 (or auto, when the host negotiated h2)
// the router sends the request with the host pool's multiplexed HTTP/2
// connections. RoundTrip runs on a goroutine of its own while the stream's
// goroutine feeds the request body into a pipe as the decoder path delivers
// it: a pipe write returns only when the transport took the bytes, which it
// does only within the upstream's flow-control window, so a slow upstream
// stops the downstream. The response is then read on the stream's goroutine
// and passed to the encoder path chunk by chunk; a slow downstream stops the
// reads, and the transport stops crediting the upstream's window.
//
// A route with a retry policy buffers the request as for HTTP/1 and each
// try sends it whole (tryH2). Timeouts are the request context's: the route
// or per-try timeout its deadline, stream_idle_timeout and
// per_try_idle_timeout timers that cancel it with a cause when nothing
// moved for that long.

// h2req is one try's upstream HTTP/2 request.
type h2req struct {
	req  *http.Request
	pw   *io.PipeWriter // nil without a streamed body
	done chan h2result
	info chan h2info // informational heads, from the transport's reader
	// infoBytes is the size of the informational heads so far (got1xx).
	infoBytes int
	got       bool           // the RoundTrip result was received
	resp      *http.Response // the result's response; its body is closed by closeH2
	ctx       context.Context
	cancel    context.CancelCauseFunc
	// abort cancels the request when an HTTP/1.1 client is found gone
	// (the peer-close watch's abort; nil for other downstreams).
	abort func()
	// idle is stream_idle_timeout's timer, tryIdle per_try_idle_timeout's
	// (until the response head); nil when not configured.
	idle, tryIdle *idleTimer
	// timeout cancels the request with errDeadline: the route timeout of
	// a request whose body is streamed (armed when the request ends, in
	// exchangeH2), or a retry try's per_try_timeout until the response
	// head (tryH2). Nil otherwise.
	timeout *time.Timer
}

// Causes of a cancelled upstream HTTP/2 request.
var (
	errStreamIdle = errors.New("router: stream idle timeout")
	errPerTryIdle = errors.New("router: per-try idle timeout")
	errRefused    = errors.New("router: upstream refused the stream")
	errDeadline   = errors.New("router: try deadline")
)

// idleTimer cancels a request with a cause when it is not touched for d. A
// nil *idleTimer does nothing. touch only records the time (it runs per
// response chunk); the timer, when it fires, re-arms for what is left since
// the last touch, so it fires about once per d whatever the traffic.
type idleTimer struct {
	t       *time.Timer
	d       time.Duration
	last    atomic.Int64 // when something last moved, nanoseconds since idleEpoch
	stopped atomic.Bool
}

// idleEpoch is the origin of idleTimer's monotonic clock.
var idleEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(idleEpoch)) }

func newIdleTimer(d time.Duration, cancel context.CancelCauseFunc, cause error) *idleTimer {
	if d <= 0 {
		return nil
	}
	it := &idleTimer{d: d}
	it.last.Store(monoNow())
	// Made stopped, then armed: fire reads it.t.
	it.t = time.AfterFunc(time.Hour, func() { it.fire(cancel, cause) })
	it.t.Reset(d)
	return it
}

// fire runs on the timer's goroutine.
func (t *idleTimer) fire(cancel context.CancelCauseFunc, cause error) {
	if t.stopped.Load() {
		return
	}
	if left := t.d - time.Duration(monoNow()-t.last.Load()); left > 0 {
		t.t.Reset(left)
		return
	}
	cancel(cause)
}

// touch records that something moved.
func (t *idleTimer) touch() {
	if t != nil {
		t.last.Store(monoNow())
	}
}

func (t *idleTimer) stop() {
	if t != nil {
		t.stopped.Store(true)
		t.t.Stop()
	}
}

// h2info is an informational (1xx) response head from the upstream.
type h2info struct {
	status int
	header textproto.MIMEHeader
}

// h2InfoQueue bounds the informational heads waiting for the stream's
// goroutine; more are dropped, as the transport's reader must never wait
// for the downstream (it also reads the window updates that let a request
// body, and so the stream's goroutine, move on).
const h2InfoQueue = 8

// got1xx is the request's httptrace hook: it queues 1xx heads other than
// 100 Continue (the downstream codec answered Expect itself) and 101. As
// over HTTP/1, the 1xx heads of one response count together against the
// head size limit: an endless stream of them is a malformed response (the
// hook's error resets the stream, and h2Err makes it a protocol error).
func (u *h2req) got1xx(code int, header textproto.MIMEHeader) error {
	u.infoBytes += 32 + len(":status") + 3 // RFC 9113 §6.5.2 field sizes
	for k, vv := range header {
		for _, v := range vv {
			u.infoBytes += 32 + len(k) + len(v)
		}
	}
	if u.infoBytes > http1.DefaultMaxHeaderBytes {
		return errTooManyInformational
	}
	if code == 100 || code == 101 {
		return nil
	}
	select {
	case u.info <- h2info{code, header}:
	default:
	}
	return nil
}

// forward1xx passes an informational head to the downstream.
func (f *filter) forward1xx(in h2info) error {
	h := &httpfilter.ResponseHeaders{Status: in.status}
	for k, vv := range in.header {
		name := strings.ToLower(k)
		for _, v := range vv {
			h.Add(name, v)
		}
	}
	return f.cb.Encode1xxHeaders(h)
}

// h2URL is the URL of an HTTP/2 upstream request whose :path is h.Path as
// it is, as an HTTP/1.1 upstream gets it: through URL.Opaque
// ("//authority/path", which the transport turns back into the path), not
// through a parsed URL, whose re-escaping would send "/a%7Bb%7D" for the
// "/a{b}" the routes matched. An authority the transport would rewrite
// (not plain ASCII) falls back to the parsed URL.
func h2URL(h *httpfilter.RequestHeaders, scheme string) (*url.URL, error) {
	path, authority := string(h.Path), string(h.Authority)
	if len(path) == 0 || path[0] != '/' || !asciiAuthority(authority) {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return nil, err
		}
		u.Scheme, u.Host = scheme, authority
		return u, nil
	}
	p, q, hasQ := strings.Cut(path, "?")
	return &url.URL{Scheme: scheme, Host: authority, Opaque: "//" + authority + p, RawQuery: q, ForceQuery: hasQ && q == ""}, nil
}

// asciiAuthority reports whether a is printable ASCII without '/' or '?',
// which the HTTP/2 transport keeps as it is.
func asciiAuthority(a string) bool {
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '?' {
			return false
		}
	}
	return true
}

type h2result struct {
	resp *http.Response
	err  error
}

// newH2Request converts a request head to an HTTP/2 request for an
// upstream reached with scheme; the caller sets the body. Hop-by-hop fields
// are dropped, a content-length is kept only for a request with a body, and
// no user-agent is added.
func newH2Request(ctx context.Context, h *httpfilter.RequestHeaders, scheme string, hasBody bool) (*http.Request, error) {
	u, err := h2URL(h, scheme)
	if err != nil {
		return nil, err
	}
	req := (&http.Request{
		Method:     string(h.Method),
		URL:        u,
		Host:       string(h.Authority),
		Header:     make(http.Header, len(h.Fields)),
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Body:       http.NoBody,
	}).WithContext(ctx)
	for i := range h.Fields {
		fl := &h.Fields[i]
		name := string(fl.Name)
		switch name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
			continue
		case "te":
			if string(fl.Value) != "trailers" {
				continue
			}
		case "content-length":
			if n, err := strconv.ParseInt(string(fl.Value), 10, 64); err == nil && hasBody {
				req.ContentLength = n
			}
			continue
		}
		req.Header[name] = append(req.Header[name], string(fl.Value))
	}
	if _, ok := req.Header["user-agent"]; !ok {
		// An empty value keeps the transport from sending its own
		// (Go-http-client/2.0) for a client that sent none.
		req.Header["user-agent"] = []string{""}
	}
	return req, nil
}

// newH2 prepares a try's request: its context (ending at deadline, zero for
// none, and with the downstream stream) and idle timers. It answers 400 and
// returns nil for a path the URL parser refuses.
func (f *filter) newH2(deadline time.Time, hasBody bool) *h2req {
	base := f.ctx
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithCancelCause(base)
	if !deadline.IsZero() {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadlineCause(ctx, deadline, errDeadline)
		outer := cancel
		cancel = func(cause error) { outer(cause); stop() }
	}
	scheme := "http"
	if f.cluster.Cfg.TLS != nil {
		scheme = "https"
	}
	u := &h2req{done: make(chan h2result, 1), info: make(chan h2info, h2InfoQueue), ctx: ctx, cancel: cancel}
	req, err := newH2Request(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: u.got1xx}),
		f.req, scheme, hasBody)
	if err != nil {
		cancel(err)
		f.reply(httpfilter.LocalReply{Status: 400, Flags: httpfilter.FlagDownstreamProtocolError, Details: "invalid_path"})
		return nil
	}
	u.req = req
	if f.pw != nil {
		// An HTTP/1.1 client: its stream has no context to end the
		// request with; the peer-close watch cancels it instead.
		f.unwatch()
		u.abort = func() { cancel(errDownstreamGone) }
		f.pw.WatchPeer(&u.abort)
		f.peerWatching = true
	}
	u.idle = newIdleTimer(f.streamIdle, cancel, errStreamIdle)
	if rp := f.rp; rp != nil {
		u.tryIdle = newIdleTimer(rp.PerTryIdleTimeout, cancel, errPerTryIdle)
	}
	f.h2 = u
	return u
}

// goH2 runs the RoundTrip of u on its own goroutine.
func (f *filter) goH2(u *h2req) {
	p := f.pool()
	max := f.cluster.Cfg.MaxRequestsPerConnection
	req := u.req
	go func() {
		resp, err := p.RoundTrip(req, max)
		if err != nil {
			if pr, ok := req.Body.(*io.PipeReader); ok {
				pr.CloseWithError(err)
			}
		}
		u.done <- h2result{resp, err}
	}()
}

// startH2 starts the upstream request of a route without retries, its body
// to be streamed as the decoder path delivers it.
func (f *filter) startH2(endStream bool) {
	f.tryDeadline = f.deadline
	deadline := f.deadline
	if !endStream {
		// The route timeout runs from the end of the request (exchangeH2),
		// as Envoy's: a slow upload is not an upstream timeout.
		deadline = time.Time{}
	}
	u := f.newH2(deadline, !endStream)
	if u == nil {
		return
	}
	if !endStream {
		pr, pw := io.Pipe()
		u.req.Body = pr
		u.req.Trailer = http.Header{}
		if u.req.ContentLength == 0 {
			u.req.ContentLength = -1
		}
		u.pw = pw
	}
	f.goH2(u)
	if endStream {
		f.exchangeH2()
	}
}

// decodeDataH2 passes a request body chunk to the upstream.
func (f *filter) decodeDataH2(b *buffer.Buffer, endStream bool) {
	u := f.h2
	if data := b.Bytes(); len(data) > 0 {
		_, _ = u.pw.Write(data) // an error shows in the RoundTrip result
		u.idle.touch()
	}
	if endStream {
		u.pw.Close()
		f.exchangeH2()
	}
}

// decodeTrailersH2 ends the request body with trailers.
func (f *filter) decodeTrailersH2(t *httpfilter.Headers) {
	u := f.h2
	for i := range t.Fields {
		k := string(t.Fields[i].Name)
		u.req.Trailer[k] = append(u.req.Trailer[k], string(t.Fields[i].Value))
	}
	u.pw.Close()
	f.exchangeH2()
}

// awaitH2 waits for the RoundTrip result of the current try, forwarding
// informational heads. It reports false when the downstream is gone.
func (f *filter) awaitH2() (h2result, bool) {
	u := f.h2
	var res h2result
	for waiting := true; waiting; {
		select {
		case res = <-u.done:
			waiting = false
		case in := <-u.info:
			u.idle.touch()
			if f.forward1xx(in) != nil {
				return res, false // the downstream is gone: closeH2 abandons the request
			}
		}
	}
	u.got, u.resp = true, res.resp
	u.tryIdle.touch()
	if res.err == nil && (res.resp.StatusCode < 200 || res.resp.StatusCode > 599) {
		// RFC 9110 §15: three digits, 1xx being the transport's.
		res.resp.Body.Close()
		res.resp, u.resp, res.err = nil, nil, errH2Malformed
	}
	// 1xx heads the transport reported before the final head.
	for {
		select {
		case in := <-u.info:
			if f.forward1xx(in) != nil {
				return res, false
			}
		default:
			if res.err != nil {
				res.err = f.h2Err(res.err)
			}
			return res, true
		}
	}
}

// exchangeH2 waits for the upstream response of a route without retries
// and passes it downstream.
func (f *filter) exchangeH2() {
	sent := time.Now()
	if u := f.h2; u.pw != nil && f.timeout > 0 {
		f.deadline = sent.Add(f.timeout)
		f.tryDeadline = f.deadline
		u.timeout = time.AfterFunc(f.timeout, func() { u.cancel(errDeadline) })
	}
	res, ok := f.awaitH2()
	if !ok {
		return
	}
	if res.err != nil {
		f.failH2(res.err, false)
		return
	}
	f.headH2(res.resp)
	f.recordStatus()
	f.deliverH2(res.resp, sent)
}

// tryH2 is one try of run on f.host's HTTP/2 pool: the buffered request is
// sent whole. It reports whether run is to try again (again has agreed);
// otherwise the stream has been answered.
func (f *filter) tryH2(try int) bool {
	p := f.rp
	deadline, perTry := f.deadline, false
	if p.PerTryTimeout > 0 {
		if d := time.Now().Add(p.PerTryTimeout); deadline.IsZero() || d.Before(deadline) {
			deadline, perTry = d, true
		}
	}
	f.tryDeadline = deadline
	hasBody := f.framing != http1.NoBody || len(f.reqBody) > 0
	// The request's context ends with the route timeout; per_try_timeout
	// bounds the wait for the response head only (a timer stopped when
	// it comes), as in Envoy, so a slow body is not cut short by it.
	u := f.newH2(f.deadline, hasBody)
	if u == nil {
		return false
	}
	if perTry {
		u.timeout = time.AfterFunc(time.Until(deadline), func() { u.cancel(errDeadline) })
	}
	if hasBody {
		u.req.ContentLength = int64(len(f.reqBody))
		u.req.Body = io.NopCloser(bytes.NewReader(f.reqBody))
		body := f.reqBody
		u.req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	f.goH2(u)
	sent := time.Now()
	res, ok := f.awaitH2()
	if !ok {
		return false
	}
	if u.timeout != nil && res.err == nil && u.timeout.Stop() {
		f.tryDeadline = f.deadline // the head came within per_try_timeout
	}
	if err := res.err; err != nil {
		if errors.Is(err, errStreamIdle) {
			f.idleReply()
			return false
		}
		if overflowed(err) {
			f.connectFailed(err) // as an HTTP/1 try: not retried
			return false
		}
		f.recordFailure(err)
		f.perTryTimedOut = errors.Is(err, errPerTryIdle) || perTry && isTimeout(err)
		cond := RetryReset | Retry5xx | RetryGatewayError
		switch {
		case errors.Is(err, pool.ErrConnect):
			cond |= RetryConnectFailure
		case errors.Is(err, errRefused):
			cond |= RetryRefusedStream
		case errors.Is(err, errPerTryIdle):
			f.cluster.Overflow.PerTryIdleTimeout.Inc()
			err = errTimeout
		case isTimeout(err):
			if !perTry {
				cond = 0 // the route timeout: nothing left to retry in
			} else {
				f.cluster.Overflow.PerTryTimeout.Inc()
			}
		}
		if f.again(try, cond) {
			return true
		}
		f.fail(err, false)
		return false
	}
	f.headH2(res.resp)
	f.recordStatus()
	if cond := retryOnStatus(p, &f.resp.Headers); cond != 0 && f.retryAllowed(try, cond) {
		if f.again(try, cond) {
			// A response sluice does not pass on; one passed on is
			// counted by deliverH2.
			f.stats.Response(res.resp.StatusCode)
			return true
		}
	}
	if try > 0 {
		f.cluster.Overflow.RetryOK.Inc()
	}
	f.deliverH2(res.resp, sent)
	return false
}

// headH2 converts the upstream response head into f.resp.Headers.
func (f *filter) headH2(resp *http.Response) {
	rh := &f.resp.Headers
	rh.Reset()
	rh.Status = resp.StatusCode
	for k, vv := range resp.Header {
		name := strings.ToLower(k)
		for _, v := range vv {
			rh.Add(name, v)
		}
	}
}

// deliverH2 passes the response whose head f.resp holds, and its body from
// resp, downstream. closeH2 closes the body.
func (f *filter) deliverH2(resp *http.Response, sent time.Time) {
	u := f.h2
	info := f.cb.Info()
	info.ResponseCode = resp.StatusCode
	f.stats.Response(resp.StatusCode)
	rh := &f.resp.Headers
	now := time.Now()
	info.UpstreamRequestSent, info.UpstreamResponseStart = sent, now
	rh.Set("x-envoy-upstream-service-time", strconv.FormatInt(now.Sub(f.started).Milliseconds(), 10))
	end := resp.Body == http.NoBody || resp.ContentLength == 0 && len(resp.Trailer) == 0
	f.mutateResponse(rh)
	if f.cb.EncodeHeaders(rh, end) != nil || end {
		return
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		u.idle.touch()
		u.tryIdle.touch()
		n, err := resp.Body.Read(buf)
		if n > 0 && (err == nil || err == io.EOF) {
			// Bytes that come with an error are not passed on: the
			// transport returns the declared length of a body that
			// overflows its content-length with the error, which a
			// client would read as the whole body.
			f.data.Set(buf[:n])
			if f.cb.EncodeData(&f.data, false) != nil {
				return
			}
			f.data.Set(nil)
			if f.cb.EncodeData(&f.data, false) != nil { // flush before the next read may block
				return
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			f.failH2(f.h2Err(err), true)
			return
		}
	}
	u.idle.stop()
	u.tryIdle.stop()
	f.stats.UpstreamRqTime.Record(time.Since(sent))
	if len(resp.Trailer) > 0 {
		t := &httpfilter.Headers{}
		for k, vv := range resp.Trailer {
			name := strings.ToLower(k)
			for _, v := range vv {
				t.Add(name, v)
			}
		}
		_ = f.cb.EncodeTrailers(t)
		return
	}
	f.data.Set(nil)
	_ = f.cb.EncodeData(&f.data, true)
}

// h2Err maps an upstream HTTP/2 error (of the current try) to the error
// fail and the retry conditions know: the cause of a cancelled request, a
// timeout, a refused stream or a reset.
func (f *filter) h2Err(err error) error {
	if cause := context.Cause(f.h2.ctx); cause != nil && f.h2.ctx.Err() != nil {
		switch cause {
		case errStreamIdle, errPerTryIdle:
			return cause
		case errDeadline:
			return errTimeout
		}
	}
	var se http2.StreamError
	var ge http2.GoAwayError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	case errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream:
		return errRefused
	case errors.As(err, &se) && se.Code == http2.ErrCodeProtocol && se.Cause != nil && se.Cause.Error() != "received from peer",
		strings.HasPrefix(err.Error(), "net/http: server replied with more than declared Content-Length"):
		// The transport found the response malformed (a field name or
		// pseudo-header it refuses, no or a non-numeric :status, a head
		// over the limit, an error of got1xx, DATA beyond the
		// content-length) and reset the stream: a protocol error, as an
		// HTTP/1 upstream's unparsable response. A PROTOCOL_ERROR the
		// upstream sent has x/net's errFromPeer, "received from peer",
		// as its cause: a reset.
		return errH2Malformed
	case errors.As(err, &se), errors.As(err, &ge):
		return errUpstreamReset
	}
	return err
}

// failH2 ends the stream after an upstream HTTP/2 error (mapped by h2Err)
// as an HTTP/1 upstream failure of the same kind does.
func (f *filter) failH2(err error, started bool) {
	if f.downstreamCancelled() {
		f.cb.Info().ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
		return
	}
	switch {
	case errors.Is(err, errStreamIdle):
		f.idleReply()
		return
	case errors.Is(err, errPerTryIdle):
		// After the response head: the stream is reset, as Envoy does.
		f.cluster.Overflow.PerTryIdleTimeout.Inc()
		f.perTryTimedOut = true
		err = errTimeout
	case !started && overflowed(err):
		f.connectFailed(err)
		return
	}
	if !started {
		f.recordFailure(err)
	}
	f.fail(err, started)
}

// downstreamCancelled reports whether the downstream HTTP/2 stream was
// reset or its connection ended.
func (f *filter) downstreamCancelled() bool {
	return f.ctx != nil && f.ctx.Err() != nil || f.pw != nil && f.pw.PeerGone()
}

// closeH2 abandons the current try's upstream HTTP/2 request (a finished
// one is only released).
func (f *filter) closeH2() {
	u := f.h2
	if u == nil {
		return
	}
	f.h2 = nil
	u.idle.stop()
	u.tryIdle.stop()
	if u.timeout != nil {
		u.timeout.Stop()
	}
	if u.resp != nil {
		u.resp.Body.Close() // before the cancel: a finished stream stays clean
	}
	u.cancel(errDownstreamGone)
	if u.pw != nil {
		u.pw.CloseWithError(errDownstreamGone)
	}
	if u.got {
		return
	}
	// RoundTrip sees the cancelled context and returns; a response that
	// raced the cancellation is closed so that its stream is released.
	go func() {
		if res := <-u.done; res.resp != nil {
			res.resp.Body.Close()
		}
	}()
}

// Errors h2Err maps x/net/http2 errors to, for fail. errH2Malformed is an
// *http1.Error so that fail and outlier detection treat it as an HTTP/1
// upstream's unparsable response: 502, flag UPE.
var (
	errTimeout       = timeoutError{}
	errUpstreamReset = errors.New("router: upstream reset the stream")
	errH2Malformed   = &http1.Error{Status: 502, Reason: "malformed HTTP/2 response"}
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "router: upstream response timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// upstreamProtocol reports which protocol the route's cluster speaks to
// f.host.
func (f *filter) upstreamProtocol() (pool.Protocol, error) {
	switch f.cluster.Cfg.Protocol {
	case "http2":
		return pool.HTTP2, nil
	case "auto":
		return f.pool().Negotiate(context.Background())
	}
	return pool.HTTP1, nil
}
