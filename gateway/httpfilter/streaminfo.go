package httpfilter

import (
	"crypto/tls"
	"net/netip"
	"strings"
	"time"
)

// ResponseFlags are Envoy's response flags: why a stream ended the way it did.
type ResponseFlags uint32

// The response flags sluice sets. Their String form is Envoy's short code.
const (
	// FlagNoRoute: no route matched (NR).
	FlagNoRoute ResponseFlags = 1 << iota
	// FlagNoHealthyUpstream: no host to send to (UH).
	FlagNoHealthyUpstream
	// FlagUpstreamConnectionFailure: connecting upstream failed (UF).
	FlagUpstreamConnectionFailure
	// FlagUpstreamConnectionTermination: upstream closed or reset (UC).
	FlagUpstreamConnectionTermination
	// FlagUpstreamRequestTimeout: the route timeout expired (UT).
	FlagUpstreamRequestTimeout
	// FlagUpstreamProtocolError: the upstream sent invalid HTTP (UPE).
	FlagUpstreamProtocolError
	// FlagDownstreamProtocolError: the downstream sent invalid HTTP (DPE).
	FlagDownstreamProtocolError
	// FlagDownstreamConnectionTermination: the downstream went away (DC).
	FlagDownstreamConnectionTermination
	// FlagUpstreamOverflow: a circuit breaker refused the request (UO).
	FlagUpstreamOverflow
	// FlagUnauthorizedExternalService: an ext_authz filter denied (UAEX).
	FlagUnauthorizedExternalService
	// FlagStreamIdleTimeout: the stream idle timeout expired (SI).
	FlagStreamIdleTimeout
	// FlagLocalReset: the stream was reset locally (LR).
	FlagLocalReset
	// FlagRBACAccessDenied: an RBAC filter denied the request (RBAC).
	FlagRBACAccessDenied
	// FlagFaultInjected: a fault filter aborted the request (FI).
	FlagFaultInjected
	// FlagDelayInjected: a fault filter delayed the request (DI).
	FlagDelayInjected
	// FlagRateLimited: a rate limit filter refused the request (RL).
	FlagRateLimited
	// FlagResponseFromCacheFilter: the cache filter answered from its
	// store (RFCF).
	FlagResponseFromCacheFilter
)

var flagNames = [...]string{"NR", "UH", "UF", "UC", "UT", "UPE", "DPE", "DC", "UO", "UAEX", "SI", "LR", "RBAC", "FI", "DI", "RL", "RFCF"}

// String returns the flags as Envoy prints them: codes joined by ',' or "-".
func (f ResponseFlags) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// StreamInfo records what happened to a stream, for stats and the access
// log. It is owned by the stream and written only on the stream's goroutine.
type StreamInfo struct {
	// ConnectionID is the downstream connection's id (Envoy's
	// %CONNECTION_ID%), the "conn" of log lines.
	ConnectionID uint64
	Start        time.Time
	Protocol     string // "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/3"
	// DownstreamRemote is the client: the connection's peer (after the
	// PROXY protocol), or, as the connection manager's
	// xff_num_trusted_hops and use_remote_address say, the address
	// x-forwarded-for names (port 0), as Envoy's downstream remote address.
	DownstreamRemote netip.AddrPort
	DownstreamLocal  netip.AddrPort
	// DownstreamPeer is the connection's peer after the PROXY protocol,
	// whatever x-forwarded-for says (Envoy's connection remote address),
	// set by the HTTP connection manager; zero elsewhere, where
	// DownstreamRemote is the peer.
	DownstreamPeer netip.AddrPort
	// DownstreamDirectRemote is the connection's physical peer, before
	// the PROXY protocol (Envoy's direct remote address).
	DownstreamDirectRemote netip.AddrPort
	// OriginalDst is DownstreamLocal when a listener filter restored it
	// (original_dst, PROXY protocol), else the zero AddrPort.
	OriginalDst netip.AddrPort
	ServerName  string // SNI, if any
	// TLS is the downstream connection's TLS state (peer certificates,
	// ALPN), nil on plaintext. It must not be modified.
	TLS             *tls.ConnectionState
	RouteName       string
	UpstreamCluster string
	UpstreamHost    string
	ResponseCode    int
	ResponseFlags   ResponseFlags
	ResponseDetails string
	BytesReceived   int64 // request body bytes from downstream
	BytesSent       int64 // response body bytes to downstream
	// DownstreamRequestEnd is when the request's last byte was received
	// (its start for a request without a body); UpstreamRequestSent when
	// the router had sent the request upstream, UpstreamResponseStart when
	// it had the upstream's response head (zero when it did not): the
	// access log's %REQUEST_DURATION%, %REQUEST_TX_DURATION%,
	// %RESPONSE_DURATION% and %RESPONSE_TX_DURATION%. UpstreamAttempts
	// counts the tries sent upstream (%UPSTREAM_REQUEST_ATTEMPT_COUNT%).
	DownstreamRequestEnd  time.Time
	UpstreamRequestSent   time.Time
	UpstreamResponseStart time.Time
	UpstreamAttempts      int
	// GRPCStatus is the grpc-status of the response's trailers, as they
	// left the router (-1 when not a number), when GRPCStatusSet.
	GRPCStatus    int16
	GRPCStatusSet bool
	// HealthCheck: the health_check filter recognised the request as a
	// health check (Envoy's health check marking, read by the access log's
	// not_health_check_filter).
	HealthCheck bool
	// UpstreamTracer is set by a connection manager that traces with
	// spawn_upstream_span, nil otherwise: the router calls it as each
	// upstream try starts.
	UpstreamTracer UpstreamTracer
}

// UpstreamTracer begins a trace span per upstream try (Envoy's
// spawn_upstream_span). It is called on the stream's goroutine.
type UpstreamTracer interface {
	// UpstreamTry starts the span of a try to host (ending the previous
	// try's) and sets h's traceparent to name it as the upstream's parent.
	// h must be the request head the try sends.
	UpstreamTry(h *RequestHeaders, host string)
}

// Reset clears the record for reuse.
func (s *StreamInfo) Reset() { *s = StreamInfo{} }
