package tcpproxy

import (
	"net/netip"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// Session is what one proxied connection did: the record an access log
// writes. The filter fills it in; it is complete, and no longer changes,
// once the connection has ended.
type Session struct {
	// ConnID is the downstream connection's id.
	ConnID uint64
	// Remote and Local are the downstream connection's addresses (after
	// PROXY protocol and original_dst), ServerName its SNI.
	Remote, Local netip.AddrPort
	ServerName    string
	// Cluster is the cluster picked for the connection.
	Cluster string
	// UpstreamHost is the address of the host connected to; when every
	// connect failed, of the host tried last (as Envoy records it); empty
	// when no host was picked.
	UpstreamHost string
	// ConnectAttempts counts the connects tried.
	ConnectAttempts int
	// Start is when the filter began serving the connection; Duration how
	// long it did.
	Start    time.Time
	Duration time.Duration
	// RxBytes were read from downstream (and sent upstream); TxBytes were
	// read from upstream and written downstream.
	RxBytes, TxBytes uint64
	// NoHealthyUpstream: the cluster had no host to pick (Envoy flag UH).
	NoHealthyUpstream bool
	// UpstreamConnectFailure: every connect attempt failed (Envoy flag UF).
	UpstreamConnectFailure bool
	// IdleTimedOut: idle_timeout closed the connection.
	IdleTimedOut bool
}

// Flags returns the session's Envoy response flags (UH, UF, or SI for the
// idle timeout); their String is "-" when there are none.
func (s *Session) Flags() httpfilter.ResponseFlags {
	switch {
	case s.NoHealthyUpstream:
		return httpfilter.FlagNoHealthyUpstream
	case s.UpstreamConnectFailure:
		return httpfilter.FlagUpstreamConnectionFailure
	case s.IdleTimedOut:
		return httpfilter.FlagStreamIdleTimeout
	}
	return 0
}
