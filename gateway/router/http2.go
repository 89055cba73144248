package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/buffer"
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

// h2req is one stream's upstream HTTP/2 request.
type h2req struct {
	req    *http.Request
	pw     *io.PipeWriter // nil without a body
	done   chan h2result
	info   chan h2info // informational heads, from the transport's reader
	got    bool        // the RoundTrip result was received
	cancel context.CancelFunc
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
// 100 Continue (the downstream codec answered Expect itself) and 101.
func (u *h2req) got1xx(code int, header textproto.MIMEHeader) error {
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

type h2result struct {
	resp *http.Response
	err  error
}

// startH2 starts the upstream request on the host's HTTP/2 pool.
func (f *filter) startH2(h *httpfilter.RequestHeaders, endStream bool) {
	base := f.ctx
	if base == nil {
		base = context.Background()
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if f.route.Timeout > 0 {
		ctx, cancel = context.WithTimeout(base, f.route.Timeout)
	} else {
		ctx, cancel = context.WithCancel(base)
	}
	scheme := "http"
	if f.route.Cluster.Cfg.TLS != nil {
		scheme = "https"
	}
	u, err := url.ParseRequestURI(string(h.Path))
	if err != nil {
		cancel()
		f.cb.SendLocalReply(httpfilter.LocalReply{Status: 400, Flags: httpfilter.FlagDownstreamProtocolError, Details: "invalid_path"})
		return
	}
	u.Scheme, u.Host = scheme, string(h.Authority)
	req := (&http.Request{
		Method:     string(h.Method),
		URL:        u,
		Host:       string(h.Authority),
		Header:     make(http.Header, len(h.Fields)),
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Body:       http.NoBody,
	}).WithContext(ctx)
	req.ContentLength = 0
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
			if n, err := strconv.ParseInt(string(fl.Value), 10, 64); err == nil && !endStream {
				req.ContentLength = n
			}
			continue
		}
		req.Header[name] = append(req.Header[name], string(fl.Value))
	}
	u2 := &h2req{req: req, done: make(chan h2result, 1), info: make(chan h2info, h2InfoQueue), cancel: cancel}
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: u2.got1xx}))
	u2.req = req
	if !endStream {
		pr, pw := io.Pipe()
		req.Body = pr
		req.Trailer = http.Header{}
		if req.ContentLength == 0 {
			req.ContentLength = -1
		}
		u2.pw = pw
	}
	f.h2 = u2
	p := f.pool()
	max := f.route.Cluster.Cfg.MaxRequestsPerConnection
	go func() {
		resp, err := p.RoundTrip(req, max)
		if err != nil {
			if pr, ok := req.Body.(*io.PipeReader); ok {
				pr.CloseWithError(err)
			}
		}
		u2.done <- h2result{resp, err}
	}()
	if endStream {
		f.exchangeH2()
	}
}

// decodeDataH2 passes a request body chunk to the upstream.
func (f *filter) decodeDataH2(b *buffer.Buffer, endStream bool) {
	u := f.h2
	if data := b.Bytes(); len(data) > 0 {
		_, _ = u.pw.Write(data) // an error shows in the RoundTrip result
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

// exchangeH2 waits for the upstream response and passes it downstream.
func (f *filter) exchangeH2() {
	u := f.h2
	sent := time.Now()
	var res h2result
	for waiting := true; waiting; {
		select {
		case res = <-u.done:
			waiting = false
		case in := <-u.info:
			if f.forward1xx(in) != nil {
				return // the downstream is gone: closeH2 abandons the request
			}
		}
	}
	u.got = true
	// 1xx heads the transport reported before the final head.
	for more := true; more; {
		select {
		case in := <-u.info:
			if f.forward1xx(in) != nil {
				if res.resp != nil {
					res.resp.Body.Close()
				}
				return
			}
		default:
			more = false
		}
	}
	if res.err != nil {
		f.failH2(res.err, false)
		return
	}
	resp := res.resp
	defer resp.Body.Close()
	info := f.cb.Info()
	info.ResponseCode = resp.StatusCode
	f.stats.Response(resp.StatusCode)
	rh := &f.resp.Headers
	rh.Reset()
	rh.Status = resp.StatusCode
	for k, vv := range resp.Header {
		name := strings.ToLower(k)
		for _, v := range vv {
			rh.Add(name, v)
		}
	}
	end := resp.Body == http.NoBody || resp.ContentLength == 0 && len(resp.Trailer) == 0
	if f.cb.EncodeHeaders(rh, end) != nil || end {
		return
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
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
			f.failH2(err, true)
			return
		}
	}
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

// failH2 maps an upstream HTTP/2 error to the local reply (or reset) an
// HTTP/1 upstream failure of the same kind gets.
func (f *filter) failH2(err error, started bool) {
	if f.downstreamCancelled() {
		f.cb.Info().ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
		return
	}
	var se http2.StreamError
	var ge http2.GoAwayError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		err = errTimeout
	case errors.As(err, &se), errors.As(err, &ge):
		err = errUpstreamReset
	}
	f.fail(err, started)
}

// downstreamCancelled reports whether the downstream HTTP/2 stream was
// reset or its connection ended.
func (f *filter) downstreamCancelled() bool { return f.ctx != nil && f.ctx.Err() != nil }

// closeH2 abandons an unfinished upstream HTTP/2 request.
func (f *filter) closeH2() {
	u := f.h2
	u.cancel()
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

// Errors failH2 maps x/net/http2 errors to, for fail.
var (
	errTimeout       = timeoutError{}
	errUpstreamReset = errors.New("router: upstream reset the stream")
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "router: upstream response timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// upstreamProtocol reports which protocol the route's cluster speaks to host.
func (f *filter) upstreamProtocol() (pool.Protocol, error) {
	switch f.route.Cluster.Cfg.Protocol {
	case "http2":
		return pool.HTTP2, nil
	case "auto":
		return f.pool().Negotiate(context.Background())
	}
	return pool.HTTP1, nil
}
