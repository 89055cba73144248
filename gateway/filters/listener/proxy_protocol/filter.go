package proxyprotocol

import (
	"errors"

	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// filter reads the PROXY header of a connection. It keeps no per-connection
// state, so one value serves every connection; OnAccept runs on the
// connection's goroutine.
type filter struct {
	allowWithout bool
}

// OnAdopt implements netfilter.AdoptFilter: a connection moved by a
// restart began without a PROXY header (one that had a header is never
// moved, see conn.Conn.CanHandoff), so its next request is not looked at
// for one. It is served as the previous generation served it, from its
// socket's peer address, also when this generation's config requires the
// header: like a connection that Envoy drains, it ends under the rules it
// was accepted with.
func (f *filter) OnAdopt(netfilter.ListenerCallbacks) netfilter.Status { return netfilter.Continue }

// OnAccept implements netfilter.ListenerFilter. A valid header is consumed
// and, unless it is LOCAL-like, replaces Info.RemoteAddr and Info.LocalAddr.
// A malformed header closes the connection; so does a missing one, unless
// allow_requests_without_proxy_protocol is set; so does a stream that ends
// or times out before the header is complete.
func (f *filter) OnAccept(cb netfilter.ListenerCallbacks) netfilter.Status {
	h, n, err := read(cb.Peek)
	switch {
	case errors.Is(err, errNoHeader) && f.allowWithout:
		return netfilter.Continue
	case err != nil:
		return netfilter.StopIteration
	}
	cb.Consume(n)
	if !h.Local {
		info := cb.Info()
		if !info.DirectRemoteAddr.IsValid() {
			info.DirectRemoteAddr = info.RemoteAddr
		}
		info.RemoteAddr = h.Source
		if h.Destination != info.LocalAddr {
			info.LocalAddr, info.LocalAddrRestored = h.Destination, true
		}
	}
	return netfilter.Continue
}

// read peeks until parse decides; it returns the header and its length.
func read(peek func(int) ([]byte, error)) (Header, int, error) {
	need := 1
	for {
		b, err := peek(need)
		if len(b) < need {
			if err == nil {
				err = errors.New("proxy_protocol: short peek")
			}
			if len(b) > 0 {
				// decide on what arrived: a non-PROXY client that sent
				// less than a signature's length and closed
				if _, _, _, perr := parse(b); perr != nil {
					return Header{}, 0, perr
				}
			}
			return Header{}, 0, err
		}
		h, n, more, perr := parse(b)
		switch {
		case perr != nil:
			return Header{}, 0, perr
		case more == 0:
			return h, n, nil
		case more > MaxHeaderLen:
			return Header{}, 0, errMalformed
		}
		need = more
	}
}
