package tlsinspector

import (
	"errors"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// filter is the per-connection inspector. It is stateless, so one value
// serves every connection; OnAccept runs on the connection's goroutine.
type filter struct{}

// OnAdopt implements netfilter.AdoptFilter: a connection moved by a
// restart is plaintext HTTP/1.
func (filter) OnAdopt(cb netfilter.ListenerCallbacks) netfilter.Status {
	cb.Info().TransportProtocol = "raw_buffer"
	return netfilter.Continue
}

// OnAccept implements netfilter.ListenerFilter. A connection whose first
// byte is not a TLS handshake record, or whose bytes claimed to be TLS but
// do not parse as a ClientHello, continues as "raw_buffer" (Envoy's
// tls_not_found). A ClientHello larger than MaxClientHelloSize, or a stream
// that ends or times out before the ClientHello is complete, closes the
// connection.
func (filter) OnAccept(cb netfilter.ListenerCallbacks) netfilter.Status {
	h, isTLS, err := inspect(cb.Peek)
	info := cb.Info()
	switch {
	case errors.Is(err, errMalformed):
		info.TransportProtocol = "raw_buffer"
		return netfilter.Continue
	case err != nil:
		return netfilter.StopIteration
	case !isTLS:
		info.TransportProtocol = "raw_buffer"
		return netfilter.Continue
	}
	info.TransportProtocol = "tls"
	info.ServerName = h.serverName
	info.ALPN = h.alpn
	return netfilter.Continue
}
