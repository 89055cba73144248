package hcm

import (
	"bytes"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// The headers_with_underscores_action values.
const (
	underscoresAllow uint8 = iota
	underscoresReject
	underscoresDrop
)

// underscoresAction returns the configured action.
func (c *Config) underscoresAction() (uint8, error) {
	switch c.HeadersWithUnderscoresAction {
	case "", "ALLOW":
		return underscoresAllow, nil
	case "REJECT_REQUEST":
		return underscoresReject, nil
	case "DROP_HEADER":
		return underscoresDrop, nil
	}
	return 0, registry.Errorf("headers_with_underscores_action", "must be ALLOW, REJECT_REQUEST or DROP_HEADER, not %q", c.HeadersWithUnderscoresAction)
}

// underscoreStats are Envoy's codec counters of
// headers_with_underscores_action, per protocol (http1., http2., http3.,
// outside the manager's scope as in Envoy).
type underscoreStats struct {
	dropped, rejected [3]*stats.Counter
}

func newUnderscoreStats(slab *stats.Slab) *underscoreStats {
	u := &underscoreStats{}
	for i, p := range [3]string{"http1.", "http2.", "http3."} {
		u.dropped[i] = slab.Counter(p + "dropped_headers_with_underscores")
		u.rejected[i] = slab.Counter(p + "requests_rejected_with_underscores_in_headers")
	}
	return u
}

// protoIndex is the index of proto ("HTTP/1.1", "HTTP/2", "HTTP/3") in
// underscoreStats.
func protoIndex(proto string) int {
	switch proto {
	case protoHTTP3:
		return 2
	case "HTTP/2":
		return 1
	}
	return 0
}

// checkUnderscores applies headers_with_underscores_action to the request
// head's (or trailers') fields h received over the protocol of index pi, as Envoy's codecs do: a
// field whose name holds '_' is dropped (DROP_HEADER, each counted), or
// rejects the request (REJECT_REQUEST, counted once): it reports false
// then.
func (f *Factory) checkUnderscores(h *httpfilter.Headers, pi int) bool {
	out := 0
	for i := range h.Fields {
		fl := h.Fields[i]
		if bytes.IndexByte(fl.Name, '_') >= 0 {
			if f.underscores == underscoresReject {
				f.uStats.rejected[pi].Inc()
				return false
			}
			f.uStats.dropped[pi].Inc()
			continue
		}
		h.Fields[out] = fl
		out++
	}
	clear(h.Fields[out:])
	h.Fields = h.Fields[:out]
	return true
}

// underscoreDetails are Envoy's response code details of a request
// rejected for an underscore, by protocol index.
var underscoreDetails = [3]string{"http1.unexpected_underscore", "http2.unexpected_underscore", "http3.unexpected_underscore"}

// trailerUnderscores applies headers_with_underscores_action to the request
// trailers t received over the protocol of index pi, as Envoy's codecs do
// to every field block: fields are dropped (DROP_HEADER), or the request is
// refused (REJECT_REQUEST) with a 400 and a close on HTTP/1.1 and a reset
// on HTTP/2 and HTTP/3; it reports false then, the stream ended.
func (s *stream) trailerUnderscores(t *httpfilter.Headers, pi int) bool {
	f := s.conn.f
	if f.underscores == underscoresAllow || f.checkUnderscores(t, pi) {
		return true
	}
	if pi == 0 {
		f.stats.DownstreamCxProtocolError.Inc()
		s.SendLocalReply(httpfilter.LocalReply{Status: 400, Flags: httpfilter.FlagDownstreamProtocolError, Details: underscoreDetails[0]})
		s.closeAfter = true
		return false
	}
	s.info.ResponseFlags |= httpfilter.FlagDownstreamProtocolError
	s.info.ResponseDetails = underscoreDetails[pi]
	s.reset = true
	return false
}
