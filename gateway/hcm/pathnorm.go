package hcm

import (
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
	"github.com/sluice-proxy/sluice/gateway/internal/pathnorm"
)

// detailsPathNormalization is Envoy's response code details of a request
// refused or redirected by path normalization.
const detailsPathNormalization = "path_normalization_failed"

var hdrLocation = []byte("location")

// normalizePath applies normalize_path, merge_slashes and
// path_with_escaped_slashes_action to the request head h, once per request,
// on every protocol, before route selection and the HTTP filters: they, the
// access log and the upstream see the normalized path. It reports whether
// the request goes on; if not, reply is its answer (400, or a 307 to the
// unescaped path), sent without running the filters, and an HTTP/1.1
// connection closes after a 400. A path that needs no change costs one scan
// and no allocation; one that must be rewritten to know (a changed one, or
// one whose escapes all stay) is written to the stream's scratch buffer,
// kept across requests.
func (s *stream) normalizePath(h *httpfilter.RequestHeaders) (reply httpfilter.LocalReply, ok bool) {
	f := s.conn.f
	out, oc := f.path.Apply(&s.pathBuf, h.Path)
	if cap(s.pathBuf) > maxPathBuf {
		s.pathBuf = nil // out, if it is there, lives on until the stream ends
	}
	switch oc {
	case pathnorm.Unchanged:
		return reply, true
	case pathnorm.Changed:
		h.Path = out
		return reply, true
	case pathnorm.Redirect:
		// gRPC clients do not follow redirects; gRPC-Web ones (browsers)
		// do, and their content-type is not gRPC's.
		if !grpcwire.IsGRPC(h.Get("content-type")) {
			h.Path = out
			f.stats.DownstreamRqRedirectedWithNormalizedPath.Inc()
			return httpfilter.LocalReply{Status: 307, Details: detailsPathNormalization,
				Headers: []httpfilter.Field{{Name: hdrLocation, Value: out}}}, false
		}
	}
	f.stats.DownstreamRqFailedPathNormalization.Inc()
	if s.h2 == nil {
		s.closeAfter = true
	}
	return httpfilter.LocalReply{Status: 400, Details: detailsPathNormalization}, false
}

// maxPathBuf bounds the path scratch a pooled stream keeps across requests.
const maxPathBuf = 8 << 10
