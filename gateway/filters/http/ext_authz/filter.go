package extauthz

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	return &filter{f: f, cb: cb}
}

// filter is one stream's instance. Its methods run on the stream's
// goroutine; the check blocks that goroutine, bounded by the timeout.
type filter struct {
	f  *Factory
	cb httpfilter.DecoderCallbacks
	h  *httpfilter.RequestHeaders

	// extensions are the route's context extensions merged over the
	// filter's (nil: the filter's).
	extensions map[string]string

	buffering   bool   // waiting for the body before checking
	body        []byte // body bytes kept for the check
	respHeaders []*authapi.HeaderValueOption
}

// httpfilter.DecoderFilter

// hdrFailureModeAllowed marks a request let through by failure_mode_allow.
const hdrFailureModeAllowed = "x-envoy-auth-failure-mode-allowed"

func (fl *filter) DecodeHeaders(h *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	if r := fl.cb.Route(); r != nil {
		if r.FilterDisabled(Name) {
			fl.f.Stats.Disabled.Add(1)
			return httpfilter.HeadersContinue
		}
		if pr, ok := r.PerFilterConfig(Name).(*perRoute); ok {
			if pr.disabled {
				fl.f.Stats.Disabled.Add(1)
				return httpfilter.HeadersContinue
			}
			fl.extensions = fl.f.mergeExtensions(pr.extensions)
		}
	}
	// Only this filter says a request passed on a failed check: a
	// client's own copy of the header must not reach the upstream.
	h.Del(hdrFailureModeAllowed)
	if fl.f.maxBody > 0 && !end {
		if n, ok := contentLength(h); ok && n > int64(fl.f.maxBody) && !fl.f.partial {
			fl.tooLarge()
			return httpfilter.HeadersStopIteration
		}
		fl.h, fl.buffering = h, true
		return httpfilter.HeadersStopIteration
	}
	if fl.check(h, false) {
		return httpfilter.HeadersContinue
	}
	return httpfilter.HeadersStopIteration
}

func (fl *filter) DecodeData(b *buffer.Buffer, end bool) httpfilter.DataStatus {
	if !fl.buffering {
		return httpfilter.DataContinue
	}
	p := b.Bytes()
	if room := fl.f.maxBody - len(fl.body); len(p) > room {
		if !fl.f.partial {
			fl.tooLarge()
			return httpfilter.DataStopNoBuffer
		}
		fl.body = append(fl.body, p[:room]...)
		fl.buffering = false
		if fl.check(fl.h, true) {
			return httpfilter.DataContinue
		}
		return httpfilter.DataStopNoBuffer
	}
	fl.body = append(fl.body, p...)
	if !end {
		return httpfilter.DataStopAndBuffer
	}
	fl.buffering = false
	if fl.check(fl.h, false) {
		return httpfilter.DataContinue
	}
	return httpfilter.DataStopNoBuffer
}

func (fl *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	if fl.buffering {
		fl.buffering = false
		if !fl.check(fl.h, false) {
			return httpfilter.TrailersStopIteration
		}
		fl.cb.ContinueDecoding()
	}
	return httpfilter.TrailersContinue
}

func (fl *filter) OnDestroy() {
	fl.h, fl.body, fl.respHeaders, fl.extensions = nil, nil, nil, nil
}

// httpfilter.EncoderFilter

func (fl *filter) EncodeHeaders(h *httpfilter.ResponseHeaders, end bool) httpfilter.HeadersStatus {
	for _, o := range fl.respHeaders {
		setHeader(&h.Headers, o)
	}
	return httpfilter.HeadersContinue
}

func (fl *filter) EncodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

func (fl *filter) EncodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

func (fl *filter) tooLarge() {
	fl.buffering = false
	fl.cb.SendLocalReply(httpfilter.LocalReply{Status: 413, Body: "Payload Too Large\n", Details: "ext_authz_request_payload_too_large"})
}

// check asks the plugin and applies its answer. It reports whether the
// request may proceed; if not, it has sent the local reply.
func (fl *filter) check(h *httpfilter.RequestHeaders, partial bool) bool {
	f := fl.f
	if f.authz == nil && f.http == nil {
		return fl.failed(h, false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	var resp *authapi.CheckResponse
	var err error
	if f.http != nil {
		resp, err = f.http.check(ctx, h, fl.body, partial)
	} else {
		req := f.request(fl.cb, h, fl.body, partial)
		if fl.extensions != nil {
			req.ContextExtensions = fl.extensions
		}
		resp, err = f.authz.Check(ctx, req)
	}
	timedOut := ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
	cancel()
	if err != nil {
		if timedOut {
			f.Stats.Timeout.Add(1)
		}
		return fl.failed(h, false)
	}
	if err := authapi.Validate(resp); err != nil {
		return fl.failed(h, true)
	}
	if d := resp.GetDenied(); d != nil {
		f.Stats.Denied.Add(1)
		st := int(d.Status)
		if st == 0 {
			st = 403
		}
		r := httpfilter.LocalReply{Status: st, Body: d.Body, Flags: httpfilter.FlagUnauthorizedExternalService, Details: "ext_authz_denied"}
		// Envoy: append defaults to false here, so a header replaces the
		// reply's own field of that name (content-type) and earlier ones.
		for _, o := range d.Headers {
			name := []byte(strings.ToLower(o.Header.Key))
			if !o.Append {
				r.Headers = slices.DeleteFunc(r.Headers, func(f httpfilter.Field) bool { return bytes.Equal(f.Name, name) })
			}
			r.Headers = append(r.Headers, httpfilter.Field{Name: name, Value: []byte(o.Header.Value)})
		}
		fl.cb.SendLocalReply(r)
		return false
	}
	ok := resp.GetOk()
	for _, n := range ok.HeadersToRemove {
		if n = strings.ToLower(n); n != "host" {
			h.Del(n)
		}
	}
	for _, o := range ok.Headers {
		if strings.EqualFold(o.Header.Key, "host") {
			h.Authority = []byte(o.Header.Value)
			fl.cb.ClearRouteCache()
			continue
		}
		setHeader(&h.Headers, o)
	}
	fl.respHeaders = ok.ResponseHeadersToAdd
	f.Stats.OK.Add(1)
	return true
}

// failed applies the failure mode to a check that errored, timed out or
// answered garbage (invalid).
func (fl *filter) failed(h *httpfilter.RequestHeaders, invalid bool) bool {
	f := fl.f
	f.Stats.Error.Add(1)
	if invalid {
		f.Stats.Invalid.Add(1)
	}
	if f.failOpen {
		f.Stats.FailureModeAllowed.Add(1)
		h.Set(hdrFailureModeAllowed, "true")
		return true
	}
	fl.cb.SendLocalReply(httpfilter.LocalReply{Status: f.statusOnErr, Flags: httpfilter.FlagUnauthorizedExternalService, Details: "ext_authz_error"})
	return false
}

// setHeader applies one validated header option.
func setHeader(h *httpfilter.Headers, o *authapi.HeaderValueOption) {
	name := strings.ToLower(o.Header.Key)
	if o.Append {
		h.Add(name, o.Header.Value)
	} else {
		h.Set(name, o.Header.Value)
	}
}

// mergeExtensions returns route's context extensions merged over the
// filter's: route itself when the filter has none or route has none (nil),
// else a new map (a check of such a route costs one map more).
func (f *Factory) mergeExtensions(route map[string]string) map[string]string {
	if len(f.extensions) == 0 || route == nil {
		return route
	}
	m := make(map[string]string, len(f.extensions)+len(route))
	maps.Copy(m, f.extensions)
	maps.Copy(m, route)
	return m
}

// request builds the check request of a stream.
func (f *Factory) request(cb httpfilter.DecoderCallbacks, h *httpfilter.RequestHeaders, body []byte, partial bool) *authapi.CheckRequest {
	info := cb.Info()
	hr := &authapi.HTTPRequest{
		Method:      string(h.Method),
		Path:        string(h.Path),
		Host:        string(h.Authority),
		Scheme:      string(h.Scheme),
		Protocol:    info.Protocol,
		Headers:     make(map[string]string, len(h.Fields)),
		Size:        -1,
		Body:        body,
		PartialBody: partial,
	}
	for _, fd := range h.Fields {
		name := string(fd.Name)
		if f.allowed != nil && !f.allowed[name] {
			continue
		}
		if prev, ok := hr.Headers[name]; ok {
			hr.Headers[name] = prev + "," + string(fd.Value)
		} else {
			hr.Headers[name] = string(fd.Value)
		}
	}
	if partial {
		hr.Headers["x-envoy-auth-partial-body"] = "true"
	}
	if id := h.Get("x-request-id"); id != nil {
		hr.Id = string(id)
	}
	if n, ok := contentLength(h); ok {
		hr.Size = n
	}
	start := info.Start
	if start.IsZero() {
		start = time.Now()
	}
	req := &authapi.CheckRequest{
		Http:              hr,
		Sni:               info.ServerName,
		ContextExtensions: f.extensions,
		TimeUnixNano:      start.UnixNano(),
	}
	if a := info.DownstreamRemote; a.IsValid() {
		req.Source = &authapi.Peer{Address: a.Addr().String(), Port: uint32(a.Port())}
	}
	if st := info.TLS; st != nil && len(st.PeerCertificates) > 0 {
		// The client certificate (mTLS): Envoy's source principal and
		// certificate attributes, its DER only when asked for.
		if req.Source == nil {
			req.Source = &authapi.Peer{}
		}
		req.Source.Certificate = authapi.CertificateOf(st.PeerCertificates[0], f.includeDER)
		req.Source.Principal = authapi.Principal(req.Source.Certificate)
	}
	if a := info.DownstreamLocal; a.IsValid() {
		req.Destination = &authapi.Peer{Address: a.Addr().String(), Port: uint32(a.Port())}
	}
	return req
}

func contentLength(h *httpfilter.RequestHeaders) (int64, bool) {
	v := h.Get("content-length")
	if v == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil && n >= 0
}

var (
	_ httpfilter.DecoderFilter = (*filter)(nil)
	_ httpfilter.EncoderFilter = (*filter)(nil)
	_ httpfilter.Factory       = (*Factory)(nil)
)
