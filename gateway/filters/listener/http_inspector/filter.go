package httpinspector

import (
	"errors"
	"io"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// filter is the per-connection inspector. It is stateless, so one value
// serves every connection; OnAccept runs on the connection's goroutine.
type filter struct{}

// OnAccept implements netfilter.ListenerFilter. It inspects only
// connections whose transport protocol is "raw_buffer" (or unset): after a
// tls_inspector found TLS, the bytes are a ClientHello. It sets Info.ALPN
// when it recognises HTTP and leaves it alone otherwise; either way the
// connection continues and nothing is consumed. A connection that ends
// before the filter could decide continues too; one that times out
// (listener_filters_timeout) is closed.
func (filter) OnAccept(cb netfilter.ListenerCallbacks) netfilter.Status {
	info := cb.Info()
	if info.TransportProtocol != "" && info.TransportProtocol != "raw_buffer" {
		return netfilter.Continue
	}
	protos, err := inspect(cb.Peek)
	if err != nil && !errors.Is(err, io.EOF) {
		return netfilter.StopIteration
	}
	if protos != nil {
		info.ALPN = protos
	}
	return netfilter.Continue
}

// OnAdopt implements netfilter.AdoptFilter: a connection moved by a
// restart is HTTP/1 between two requests. The next request's line, when it
// was read ahead whole, tells its version; else it is taken to be
// HTTP/1.1 (a moved HTTP/1.0 keep-alive connection without read-ahead then
// matches as http/1.1).
func (filter) OnAdopt(cb netfilter.ListenerCallbacks) netfilter.Status {
	info := cb.Info()
	if info.TransportProtocol != "" && info.TransportProtocol != "raw_buffer" {
		return netfilter.Continue
	}
	info.ALPN = alpnHTTP11
	if b, _ := cb.Peek(0); len(b) > 0 {
		if protos, done := detect(b[:min(len(b), MaxInspectSize)]); done && protos != nil {
			info.ALPN = protos
		}
	}
	return netfilter.Continue
}

// inspect peeks until detect decides or MaxInspectSize bytes were seen.
func inspect(peek func(int) ([]byte, error)) ([]string, error) {
	need := 1
	for {
		b, err := peek(need)
		b = b[:min(len(b), MaxInspectSize)]
		if protos, done := detect(b); done {
			return protos, nil
		}
		if len(b) < need {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(b) >= MaxInspectSize {
			return nil, nil
		}
		need = len(b) + 1
	}
}
