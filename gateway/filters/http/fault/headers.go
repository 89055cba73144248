package fault

import (
	"time"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
)

// The request headers that control faults (Envoy's names). They come from
// the client: their values are parsed strictly, and a value that does not
// parse is ignored (the fault it controls is not injected, or the
// configured percentage applies).
const (
	// HeaderAbortRequest is the HTTP status to abort with, 200 … 599.
	HeaderAbortRequest = "x-envoy-fault-abort-request"
	// HeaderAbortGRPCRequest is the gRPC status to abort with, 0 … 16.
	HeaderAbortGRPCRequest = "x-envoy-fault-abort-grpc-request"
	// HeaderAbortPercentage is the share of requests to abort, 0 … 100.
	HeaderAbortPercentage = "x-envoy-fault-abort-request-percentage"
	// HeaderDelayRequest is the delay in milliseconds, at least 1.
	HeaderDelayRequest = "x-envoy-fault-delay-request"
	// HeaderDelayPercentage is the share of requests to delay, 0 … 100.
	HeaderDelayPercentage = "x-envoy-fault-delay-request-percentage"
	// HeaderThroughputResponse is the response body's limit in KiB per
	// second, at least 1.
	HeaderThroughputResponse = "x-envoy-fault-throughput-response"
	// HeaderThroughputPercentage is the share of requests whose response
	// is limited, 0 … 100.
	HeaderThroughputPercentage = "x-envoy-fault-throughput-response-percentage"
	// HeaderDownstreamNode names the calling service's node, matched
	// against downstream_nodes.
	HeaderDownstreamNode = "x-envoy-downstream-service-node"
)

// parseUint parses a non-empty string of at most 12 ASCII digits.
func parseUint(v []byte) (int64, bool) {
	if len(v) > 12 {
		return 0, false
	}
	n, ok := http1.ParseUint(v)
	return int64(n), ok
}

// parseHTTPStatus parses x-envoy-fault-abort-request: 200 … 599.
func parseHTTPStatus(v []byte) (int, bool) {
	n, ok := parseUint(v)
	if !ok || n < 200 || n > 599 {
		return 0, false
	}
	return int(n), true
}

// parseGRPCStatus parses x-envoy-fault-abort-grpc-request: 0 … 16.
func parseGRPCStatus(v []byte) (int, bool) {
	n, ok := parseUint(v)
	if !ok || n > 16 {
		return 0, false
	}
	return int(n), true
}

// maxHeaderDelay bounds x-envoy-fault-delay-request, as fixed_delay is.
const maxHeaderDelay = maxFixedDelay

// parseDelay parses x-envoy-fault-delay-request: milliseconds, 1 … 24h.
func parseDelay(v []byte) (time.Duration, bool) {
	n, ok := parseUint(v)
	if !ok || n < 1 || n > int64(maxHeaderDelay/time.Millisecond) {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// parseKbps parses x-envoy-fault-throughput-response: 1 … 2^30 KiB/s.
func parseKbps(v []byte) (int64, bool) {
	n, ok := parseUint(v)
	if !ok || n < 1 || n > maxKbps {
		return 0, false
	}
	return n, true
}

// parsePercent parses a percentage header: digits, optionally a '.' and
// more digits, 0 … 100 (Envoy's headers take an integer; a fraction is
// accepted as the config's percentage is).
func parsePercent(v []byte) (percent, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var whole, frac float64
	scale := 1.0
	dot, digits := false, 0
	for _, c := range v {
		switch {
		case c == '.' && !dot:
			dot = true
		case c >= '0' && c <= '9':
			digits++
			if dot {
				scale /= 10
				frac += float64(c-'0') * scale
			} else {
				whole = whole*10 + float64(c-'0')
			}
		default:
			return 0, false
		}
	}
	p := whole + frac
	if digits == 0 || v[0] == '.' || v[len(v)-1] == '.' || p > 100 {
		return 0, false
	}
	return percent(p), true
}
