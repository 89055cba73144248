package router

import (
	"bytes"
	"time"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
)

// Per-request overrides: Envoy's x-envoy-* request headers that change a
// request's route timeout, per-try timeout, timeout answer and retry
// policy, and a gRPC request's grpc-timeout. With use_remote_address the
// connection manager has already removed the x-envoy-* ones from an
// external client's request (without it, every client's are kept, as in
// Envoy); the router consumes what is left: it applies them and removes them before the
// request goes upstream, as Envoy does, and announces the resulting timeout
// in x-envoy-expected-rq-timeout-ms (and grpc-timeout).
//
// A request that carries none costs nothing: the connection manager's one
// pass over the request's fields, which it makes anyway, notes whether an
// x-envoy-* field was kept (overrideSource); only then does the router look
// at the fields again. grpc-timeout is looked up only on routes with
// max_stream_duration.grpc_timeout_header_max.
//
// Malformed values (not a decimal number, negative, overflowing) are
// ignored, as Envoy ignores them.

// overrideSource is implemented by the HTTP connection manager's streams.
// EnvoyHeaders reports whether the request may carry x-envoy-* fields the
// router consumes (false only when it carries none).
type overrideSource interface {
	EnvoyHeaders() bool
}

// maxHeaderTimeout bounds a timeout a request header sets: larger values
// (up to 2^64-1 ms, or 99999999 hours of grpc-timeout) would overflow a
// deadline's arithmetic. Ten years is no timeout in practice.
const maxHeaderTimeout = 10 * 365 * 24 * time.Hour

// The x-envoy-* request headers the router consumes, without the prefix.
const (
	ovRetryOn            = "retry-on"
	ovRetryGrpcOn        = "retry-grpc-on"
	ovMaxRetries         = "max-retries"
	ovRetriableStatus    = "retriable-status-codes"
	ovTimeout            = "upstream-rq-timeout-ms"
	ovPerTryTimeout      = "upstream-rq-per-try-timeout-ms"
	ovTimeoutAltResponse = "upstream-rq-timeout-alt-response"
)

// envoyPrefix starts the names of Envoy's own headers.
const envoyPrefix = "x-envoy-"

var hdrGrpcTimeout = []byte("grpc-timeout")

// overridesPresent reports whether the request may carry override headers.
func (f *filter) overridesPresent() bool {
	src, ok := f.cb.(overrideSource)
	return ok && src.EnvoyHeaders()
}

// requestOverrides is what a request's override headers say.
type requestOverrides struct {
	timeout, perTry       time.Duration
	hasTimeout, hasPerTry bool
	altResponse           bool
	retryOn               uint16 // x-envoy-retry-on and x-envoy-retry-grpc-on conditions
	retryHeader           bool   // either header was present
	maxRetries            int
	hasMaxRetries         bool
	codes                 []int // x-envoy-retriable-status-codes
}

// scanOverrides reads the override headers of h into o, removing them from
// h (one pass, in place); retriable status codes are appended to codes.
func scanOverrides(h *httpfilter.Headers, o *requestOverrides, codes []int) []int {
	out := 0
	for i := range h.Fields {
		fl := h.Fields[i]
		if n := fl.Name; len(n) > len(envoyPrefix) && string(n[:len(envoyPrefix)]) == envoyPrefix {
			consumed := true
			switch string(n[len(envoyPrefix):]) {
			case ovRetryOn:
				o.retryHeader = true
				o.retryOn |= parseRetryOn(fl.Value, retryOnNames)
			case ovRetryGrpcOn:
				o.retryHeader = true
				o.retryOn |= parseRetryOn(fl.Value, grpcRetryOnNames)
			case ovMaxRetries:
				if v, ok := http1.ParseUint(fl.Value); ok {
					o.maxRetries, o.hasMaxRetries = int(min(v, maxHeaderRetries)), true
				}
			case ovRetriableStatus:
				codes = appendStatusCodes(codes, fl.Value)
			case ovTimeout:
				if v, ok := http1.ParseUint(fl.Value); ok {
					o.timeout, o.hasTimeout = msDuration(v), true
				}
			case ovPerTryTimeout:
				if v, ok := http1.ParseUint(fl.Value); ok {
					o.perTry, o.hasPerTry = msDuration(v), true
				}
			case ovTimeoutAltResponse:
				o.altResponse = true // only its presence counts, as in Envoy
			default:
				consumed = false
			}
			if consumed {
				continue
			}
		}
		h.Fields[out] = fl
		out++
	}
	clear(h.Fields[out:])
	h.Fields = h.Fields[:out]
	o.codes = codes
	return codes
}

// maxHeaderRetries bounds x-envoy-max-retries (the cluster's max_retries
// breaker bounds concurrent retries anyway).
const maxHeaderRetries = 1 << 20

// override computes the request's timeouts and retry policy from the
// route's and the request's override headers and grpc-timeout, in Envoy's
// order (FilterUtility::finalTimeout, RetryStateImpl): grpc-timeout (on a
// route with grpc_timeout_header_max), then x-envoy-upstream-rq-timeout-ms,
// replace the route timeout; x-envoy-upstream-rq-per-try-timeout-ms the
// per-try timeout, ignored when not below the route timeout; the retry
// headers merge into the route's policy. It sets
// x-envoy-expected-rq-timeout-ms (and, for gRPC, grpc-timeout) to what the
// upstream has: the per-try timeout, else the route timeout.
func (f *filter) override(h *httpfilter.RequestHeaders, envoyHeaders bool) {
	rt := f.route
	var o requestOverrides
	if envoyHeaders {
		f.codes = scanOverrides(&h.Headers, &o, f.codes[:0])
	}
	grpc := rt.grpcTimeout && grpcwire.IsGRPC(h.Get("content-type"))
	if grpc {
		var d time.Duration
		if v, ok := parseGrpcTimeout(h.Get("grpc-timeout")); ok {
			d = v
		}
		if rt.grpcOffset > 0 && rt.grpcOffset < d {
			d -= rt.grpcOffset
		}
		if rt.grpcMax > 0 && (d == 0 || d > rt.grpcMax) {
			d = rt.grpcMax
		}
		f.timeout = d
	}
	if o.hasTimeout {
		f.timeout = o.timeout
	}
	f.altResponse = o.altResponse
	if !grpc && !o.hasTimeout && !o.hasPerTry && !o.retryHeader && !o.hasMaxRetries && len(o.codes) == 0 {
		// Nothing changes the route's timeouts or policy.
		if rt.Timeout > 0 {
			h.SetBytes(hdrExpectedRqTimeout, rt.expectedTimeoutMs(rt.expectedTimeout()))
		}
		return
	}
	base := rt.Retry
	if base == nil && (o.retryOn != 0 || o.hasPerTry) {
		// A per-try timeout needs the per-try machinery of a policy,
		// with no retries unless the request asks for some.
		base = rt.defaultRetry
	}
	if base != nil {
		f.policy = *base
		p := &f.policy
		f.rp = p
		if rt.Retry == nil && o.retryOn == 0 {
			p.NumRetries = 0
		}
		p.On |= o.retryOn
		if o.hasMaxRetries && p.On != 0 {
			p.NumRetries = o.maxRetries
		}
		if len(o.codes) > 0 {
			f.codes = append(f.codes, base.StatusCodes...)
			p.StatusCodes = f.codes
		}
		if o.hasPerTry {
			p.PerTryTimeout = o.perTry
		}
		if p.PerTryTimeout >= f.timeout && f.timeout > 0 {
			p.PerTryTimeout = 0
		}
	}
	expected := f.timeout
	if f.rp != nil && f.rp.PerTryTimeout > 0 {
		expected = f.rp.PerTryTimeout
	}
	if expected <= 0 {
		return
	}
	f.expBuf = appendMs(f.expBuf[:0], expected)
	h.SetBytes(hdrExpectedRqTimeout, f.expBuf)
	if grpc {
		f.grpcBuf = appendGrpcTimeout(f.grpcBuf[:0], expected)
		h.SetBytes(hdrGrpcTimeout, f.grpcBuf)
	}
}

// timeoutStatus is the status of the route timeout's local reply: 504, or
// 204 with x-envoy-upstream-rq-timeout-alt-response.
func (f *filter) timeoutStatus() int {
	if f.altResponse {
		return 204
	}
	return 504
}

// msDuration converts a header's milliseconds, capped at maxHeaderTimeout.
func msDuration(ms uint64) time.Duration {
	if ms >= uint64(maxHeaderTimeout/time.Millisecond) {
		return maxHeaderTimeout
	}
	return time.Duration(ms) * time.Millisecond
}

// appendMs appends d in whole milliseconds, rounded up (a timeout under a
// millisecond is not announced as none).
func appendMs(b []byte, d time.Duration) []byte {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return appendUint(b, uint64(ms))
}

func appendUint(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// parseRetryOn returns the conditions of a comma-separated list of names
// (spaces around a name allowed); unknown names are ignored, as in Envoy.
func parseRetryOn(v []byte, names map[string]uint16) uint16 {
	var on uint16
	for len(v) > 0 {
		var name []byte
		name, v, _ = bytes.Cut(v, comma)
		on |= names[string(http1.TrimOWS(name))]
	}
	return on
}

// comma separates the items of the override headers' lists.
var comma = []byte{','}

// appendStatusCodes appends the status codes of a comma-separated list to
// codes; items that are not a number from 100 to 599 are ignored.
func appendStatusCodes(codes []int, v []byte) []int {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, comma)
		if n, ok := http1.ParseUint(http1.TrimOWS(item)); ok && n >= 100 && n <= 599 && len(codes) < maxHeaderStatusCodes {
			codes = append(codes, int(n))
		}
	}
	return codes
}

// maxHeaderStatusCodes bounds the codes one request adds.
const maxHeaderStatusCodes = 64

// parseGrpcTimeout parses a grpc-timeout value (gRPC over HTTP/2: at most
// 8 digits and a unit, H M S m u n), rounding up to a whole millisecond as
// Envoy does, capped at maxHeaderTimeout.
func parseGrpcTimeout(v []byte) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, ok := http1.ParseUint(v[:len(v)-1])
	if !ok {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n >= uint64(maxHeaderTimeout/unit) {
		return maxHeaderTimeout, true
	}
	d := time.Duration(n) * unit
	return (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond, true
}

// appendGrpcTimeout appends d as a grpc-timeout value: milliseconds, or
// the smallest of seconds, minutes and hours that fits in 8 digits
// (Envoy's Grpc::Common::toGrpcTimeout).
func appendGrpcTimeout(b []byte, d time.Duration) []byte {
	const maxValue = 99999999
	v := uint64((d + time.Millisecond - 1) / time.Millisecond)
	unit := byte('m')
	if v > maxValue {
		v /= 1000
		unit = 'S'
	}
	for _, next := range []byte{'M', 'H'} {
		if v <= maxValue {
			break
		}
		v /= 60
		unit = next
	}
	if v > maxValue {
		v = maxValue
	}
	return append(appendUint(b, v), unit)
}
