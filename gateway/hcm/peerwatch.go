package hcm

import (
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// The router's peerWatcher on HTTP/1.1 streams: while a request waits at
// its upstream, the connection's goroutine reads nothing from the client,
// so a client that goes away is noticed through the connection's
// peer-close watch (netfilter.PeerCloseWatcher), which aborts the upstream
// exchange. The stream then ends with flag DC and no response, as Envoy's
// and nginx's (proxy_ignore_client_abort off) do. HTTP/2 and HTTP/3
// streams have their resets instead.

// WatchPeer starts a watch for the client going away that runs *abort.
func (s *stream) WatchPeer(abort *func()) {
	if s.h2 != nil || s.peerToken != 0 || s.conn.pw == nil {
		return
	}
	s.peerToken = s.conn.pw.WatchPeerClose(abort)
}

// UnwatchPeer ends the watch and reports whether it fired.
func (s *stream) UnwatchPeer() (fired bool) {
	if s.peerToken != 0 {
		if s.conn.pw.UnwatchPeerClose(s.peerToken) {
			s.peerGone()
		}
		s.peerToken = 0
	}
	return s.peerFired
}

// PeerGone reports whether the current or the last watch fired.
func (s *stream) PeerGone() bool {
	if !s.peerFired && s.peerToken != 0 && s.conn.pw.PeerCloseFired(s.peerToken) {
		s.peerGone()
	}
	return s.peerFired
}

// peerGone records that the client went away while the request was at the
// upstream.
func (s *stream) peerGone() {
	s.peerFired = true
	s.info.ResponseFlags |= httpfilter.FlagDownstreamConnectionTermination
}
