package extauthz

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// NewFilter implements netfilter.Factory.
func (f *Factory) NewFilter(cb netfilter.Callbacks) netfilter.Filter {
	return &filter{f: f, cb: cb}
}

// filter is one connection's instance; its methods run on the connection's
// goroutine, and the check blocks it, bounded by the timeout.
type filter struct {
	f  *Factory
	cb netfilter.Callbacks
}

// netfilter.ReadFilter

// OnNewConnection checks the connection and closes it on denial (or on a
// failed check without failure_mode_allow).
func (fl *filter) OnNewConnection() netfilter.Status {
	if fl.allowed() {
		return netfilter.Continue
	}
	fl.f.Stats.CxClosed.Add(1)
	_ = fl.cb.Conn().Close()
	return netfilter.StopIteration
}

func (fl *filter) OnData(*buffer.Buffer, bool) netfilter.Status { return netfilter.Continue }

func (fl *filter) OnEvent(netfilter.Event) {}

func (fl *filter) allowed() bool {
	f := fl.f
	if f.authz == nil {
		return fl.failed()
	}
	info := fl.cb.Conn().Info()
	req := &authapi.CheckRequest{
		Sni:               info.ServerName,
		ContextExtensions: f.extensions,
		TimeUnixNano:      time.Now().UnixNano(),
	}
	if a := info.RemoteAddr; a.IsValid() {
		req.Source = &authapi.Peer{Address: a.Addr().String(), Port: uint32(a.Port())}
	}
	if st := info.TLSState; st != nil && len(st.PeerCertificates) > 0 {
		// The client certificate (mTLS): Envoy's source principal and
		// certificate attributes, its DER only when asked for.
		if req.Source == nil {
			req.Source = &authapi.Peer{}
		}
		req.Source.Certificate = authapi.CertificateOf(st.PeerCertificates[0], f.includeDER)
		req.Source.Principal = authapi.Principal(req.Source.Certificate)
	}
	if a := info.LocalAddr; a.IsValid() {
		req.Destination = &authapi.Peer{Address: a.Addr().String(), Port: uint32(a.Port())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	resp, err := f.authz.Check(ctx, req)
	timedOut := ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded
	cancel()
	if err == nil {
		err = authapi.Validate(resp)
	}
	if err != nil {
		if timedOut {
			f.Stats.Timeout.Add(1)
		}
		return fl.failed()
	}
	if resp.GetDenied() != nil {
		f.Stats.Denied.Add(1)
		return false
	}
	f.Stats.OK.Add(1)
	return true
}

func (fl *filter) failed() bool {
	fl.f.Stats.Error.Add(1)
	if fl.f.failOpen {
		fl.f.Stats.FailureModeAllowed.Add(1)
		return true
	}
	return false
}

var (
	_ netfilter.ReadFilter = (*filter)(nil)
	_ netfilter.Factory    = (*Factory)(nil)
)
