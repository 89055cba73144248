package extauthz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
	"github.com/sluice-proxy/sluice/gateway/pool"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/plugins/authapi"
	authpb "github.com/sluice-proxy/sluice/plugins/authapi/proto"
)

// HTTPService is Envoy's http_service: the check is an HTTP/1.1 request to
// a host of Cluster, and the answer's status decides (a 2xx allows, any
// other status below 500 denies with that status and the answer's body, a
// 5xx or no answer is an error).
//
//	http_service = { server_uri = { uri = "http://authz:4180", cluster = "authz", timeout = "500ms" },
//	                 path_prefix = "/oauth2/auth",
//	                 authorization_request = { allowed_headers = [{ exact = "cookie" }] },
//	                 authorization_response = { allowed_upstream_headers = [{ prefix = "x-auth-request-" }] } }
type HTTPService struct {
	// ServerURI names the cluster the checks go to.
	ServerURI ServerURI `toml:"server_uri"`
	// PathPrefix is put before the request's path (and query) in the
	// check's path. Empty or starting with "/".
	PathPrefix string `toml:"path_prefix"`
	// AuthorizationRequest adjusts the check request.
	AuthorizationRequest AuthorizationRequest `toml:"authorization_request"`
	// AuthorizationResponse says which of the answer's headers go where.
	AuthorizationResponse AuthorizationResponse `toml:"authorization_response"`
}

// ServerURI is Envoy's HttpUri.
type ServerURI struct {
	// URI is the authorization service's URL, http:// or https://
	// (required, as in Envoy; documentation only: the connection goes to
	// Cluster's hosts and the check carries the request's own Host).
	URI string `toml:"uri"`
	// Cluster is the [[cluster]] whose hosts answer the checks (required).
	Cluster string `toml:"cluster"`
	// Timeout bounds each check; the filter's timeout (default 200ms)
	// when unset. Setting both is an error.
	Timeout *config.Duration `toml:"timeout"`
}

// AuthorizationRequest is Envoy's AuthorizationRequest.
type AuthorizationRequest struct {
	// AllowedHeaders match the names of the request headers sent with the
	// check besides the ones always sent: Authorization and the request's
	// method, path and Host (its authority). Empty: only those.
	AllowedHeaders []rbacmatch.StringMatcher `toml:"allowed_headers"`
	// HeadersToAdd are set on every check request (replacing a copied
	// header of the same name).
	HeadersToAdd []HeaderKV `toml:"headers_to_add"`
}

// HeaderKV is one header of headers_to_add.
type HeaderKV struct {
	Key   string `toml:"key"`
	Value string `toml:"value"`
}

// AuthorizationResponse is Envoy's AuthorizationResponse: matchers of the
// names of the authorization service's response headers.
type AuthorizationResponse struct {
	// AllowedUpstreamHeaders: on 200, these headers are set on the request
	// sent upstream (replacing the request's own). Default: none.
	AllowedUpstreamHeaders []rbacmatch.StringMatcher `toml:"allowed_upstream_headers"`
	// AllowedUpstreamHeadersToAppend: on 200, these are added to the
	// request sent upstream when it already has a header of that name.
	AllowedUpstreamHeadersToAppend []rbacmatch.StringMatcher `toml:"allowed_upstream_headers_to_append"`
	// AllowedClientHeaders: on a denial, these headers go to the client
	// with the denial. Default: all but Host. When set, Content-Length,
	// WWW-Authenticate and Location are added to the list, as in Envoy.
	AllowedClientHeaders []rbacmatch.StringMatcher `toml:"allowed_client_headers"`
	// AllowedClientHeadersOnSuccess: on 200, these headers are added to
	// the response sent to the client. Default: none.
	AllowedClientHeadersOnSuccess []rbacmatch.StringMatcher `toml:"allowed_client_headers_on_success"`
}

// headerList is a compiled list of header name matchers.
type headerList []rbacmatch.Matcher

// Match reports whether any matcher of l matches the (lowercase) name.
func (l headerList) Match(name string) bool {
	for i := range l {
		if l[i].MatchString(name) {
			return true
		}
	}
	return false
}

// compileHeaderList compiles the matchers of key.
func compileHeaderList(key string, ms []rbacmatch.StringMatcher) (headerList, error) {
	l := make(headerList, 0, len(ms))
	for i := range ms {
		m, err := ms[i].Compile()
		if err != nil {
			return nil, registry.Errorf(fmt.Sprintf("%s[%d]", key, i), "%v", err)
		}
		l = append(l, m)
	}
	return l, nil
}

// exactNames returns matchers of the given names.
func exactNames(names ...string) headerList {
	l := make(headerList, 0, len(names))
	for _, n := range names {
		s := n
		m, _ := (&rbacmatch.StringMatcher{Exact: &s, IgnoreCase: true}).Compile()
		l = append(l, m)
	}
	return l
}

// maxAuthzBody bounds the body of an authorization service's answer that
// is read (and, for a denial, sent to the client); a longer one is an
// error.
const maxAuthzBody = 64 << 10

// httpService is a built HTTPService.
type httpService struct {
	cl       *cluster.Cluster // nil in a dry run without clusters
	autoSNI  bool
	prefix   string
	allowed  headerList // request headers sent besides authorization
	add      []httpfilter.Field
	upSet    headerList
	upAppend headerList
	client   headerList // nil: every header but host
	clientOK headerList
}

// buildHTTPService validates s and resolves its cluster. timeout is the
// filter's timeout key, if set.
func buildHTTPService(s *HTTPService, filterTimeout *config.Duration, ctx *registry.BuildContext) (*httpService, time.Duration, error) {
	const k = "http_service."
	hs := &httpService{prefix: s.PathPrefix}
	u := s.ServerURI
	if u.URI == "" {
		return nil, 0, registry.Errorf(k+"server_uri.uri", "required (http://host:port)")
	}
	if pu, err := url.Parse(u.URI); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, 0, registry.Errorf(k+"server_uri.uri", "%q is not an http:// or https:// URL", u.URI)
	}
	timeout := DefaultTimeout
	if filterTimeout != nil {
		timeout = filterTimeout.Duration
	}
	if u.Timeout != nil {
		if filterTimeout != nil {
			return nil, 0, registry.Errorf(k+"server_uri.timeout", "set either the filter's timeout or this one, not both")
		}
		if u.Timeout.Duration <= 0 {
			return nil, 0, registry.Errorf(k+"server_uri.timeout", "must be > 0")
		}
		timeout = u.Timeout.Duration
	}
	if s.PathPrefix != "" && (s.PathPrefix[0] != '/' || strings.ContainsAny(s.PathPrefix, "?# \t\r\n\x00")) {
		return nil, 0, registry.Errorf(k+"path_prefix", "%q must start with / and hold no query, fragment, space or control character", s.PathPrefix)
	}
	var err error
	if hs.allowed, err = compileHeaderList(k+"authorization_request.allowed_headers", s.AuthorizationRequest.AllowedHeaders); err != nil {
		return nil, 0, err
	}
	for i, h := range s.AuthorizationRequest.HeadersToAdd {
		key := fmt.Sprintf("%sauthorization_request.headers_to_add[%d]", k, i)
		name := strings.ToLower(h.Key)
		if !http1.ValidFieldName(name) {
			return nil, 0, registry.Errorf(key+".key", "%q is not a header name", h.Key)
		}
		if isFraming(name) || name == "host" {
			return nil, 0, registry.Errorf(key+".key", "%q is set by sluice", h.Key)
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			return nil, 0, registry.Errorf(key+".value", "holds CR, LF or NUL")
		}
		hs.add = append(hs.add, httpfilter.Field{Name: []byte(name), Value: []byte(h.Value)})
	}
	r := s.AuthorizationResponse
	const rk = k + "authorization_response."
	if hs.upSet, err = compileHeaderList(rk+"allowed_upstream_headers", r.AllowedUpstreamHeaders); err != nil {
		return nil, 0, err
	}
	if hs.upAppend, err = compileHeaderList(rk+"allowed_upstream_headers_to_append", r.AllowedUpstreamHeadersToAppend); err != nil {
		return nil, 0, err
	}
	if hs.clientOK, err = compileHeaderList(rk+"allowed_client_headers_on_success", r.AllowedClientHeadersOnSuccess); err != nil {
		return nil, 0, err
	}
	if len(r.AllowedClientHeaders) > 0 {
		if hs.client, err = compileHeaderList(rk+"allowed_client_headers", r.AllowedClientHeaders); err != nil {
			return nil, 0, err
		}
		// Envoy always lets these through with a denial.
		hs.client = append(hs.client, exactNames("content-length", "www-authenticate", "location")...)
	}
	if u.Cluster == "" {
		return nil, 0, registry.Errorf(k+"server_uri.cluster", "required")
	}
	clusters, _ := ctx.Clusters.(*cluster.Manager)
	if clusters == nil {
		return nil, 0, registry.Errorf(k+"server_uri.cluster", "no cluster manager in the build context")
	}
	cl := clusters.Get(u.Cluster)
	if cl == nil {
		return nil, 0, registry.Errorf(k+"server_uri.cluster", "unknown cluster %q", u.Cluster)
	}
	if cl.Cfg != nil {
		if p := cl.Cfg.Protocol; p != "" && p != "http1" {
			return nil, 0, registry.Errorf(k+"server_uri.cluster", "cluster %q speaks %s; authorization checks are HTTP/1.1 (protocol = \"http1\")", u.Cluster, p)
		}
		hs.autoSNI = cl.Cfg.TLS != nil && cl.Cfg.TLS.AutoSNI
	}
	hs.cl = cl
	return hs, timeout, nil
}

// errAuthzServer is a 5xx answer: Envoy takes it as an error, not a denial.
var errAuthzServer = errors.New("ext_authz: authorization service answered 5xx")

// check asks the service about the request h (with body, the first bytes
// of it if partial) and returns the answer as the plugin API's response,
// so that the filter applies both alike. It returns an error for a failed
// exchange or a 5xx; ctx's deadline bounds it.
func (s *httpService) check(ctx context.Context, h *httpfilter.RequestHeaders, body []byte, partial bool) (*authapi.CheckResponse, error) {
	host, err := s.cl.Pick(nil)
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	hp := host.Pool
	if s.autoSNI {
		hp = hp.ForServerName(http1.AuthorityHost(h.Authority))
	}
	head := s.head(h, partial)
	uc, err := hp.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %s: %w", s.cl.Name, err)
	}
	resp, err := s.exchange(ctx, hp, uc, &head, body, h)
	if err != nil && uc.Reused && staleConn(err) && ctx.Err() == nil {
		// A kept-alive connection the service had closed: once more on
		// a new one.
		if uc, err = hp.Dial(ctx); err != nil {
			return nil, fmt.Errorf("ext_authz: %s: %w", s.cl.Name, err)
		}
		resp, err = s.exchange(ctx, hp, uc, &head, body, h)
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("ext_authz: %s: %w", s.cl.Name, err)
	}
	return resp, nil
}

// staleConn reports whether err is what a request on a connection the
// peer closed while idle fails with, before any answer.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// head returns the check's request head: the request's method and
// authority, the prefixed path, Authorization, the allowed headers and
// headers_to_add.
func (s *httpService) head(h *httpfilter.RequestHeaders, partial bool) httpfilter.RequestHeaders {
	head := httpfilter.RequestHeaders{Method: h.Method, Scheme: h.Scheme, Authority: h.Authority, Path: h.Path}
	if s.prefix != "" {
		head.Path = append([]byte(s.prefix), h.Path...)
	}
	head.Fields = make([]httpfilter.Field, 0, 4+len(s.add))
	for _, fd := range h.Fields {
		if string(fd.Name) == "authorization" || s.allowed.Match(string(fd.Name)) {
			head.Fields = append(head.Fields, fd)
		}
	}
	for _, fd := range s.add {
		head.SetBytes(fd.Name, fd.Value)
	}
	if partial {
		head.Set("x-envoy-auth-partial-body", "true")
	}
	return head
}

// exchange sends the check on uc and reads the answer; uc goes back to the
// pool if it can carry another request, else it is closed.
func (s *httpService) exchange(ctx context.Context, hp *pool.Pool, uc *pool.Conn, head *httpfilter.RequestHeaders, body []byte, h *httpfilter.RequestHeaders) (*authapi.CheckResponse, error) {
	keep := false
	defer func() {
		if keep {
			_ = uc.SetDeadline(time.Time{})
			hp.Put(uc)
		} else {
			uc.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = uc.SetDeadline(dl)
	}
	uc.W = http1.AppendRequestHead(uc.W[:0], head, http1.ContentLength, int64(len(body)), true)
	uc.W = append(uc.W, body...)
	_, err := uc.Write(uc.W)
	uc.W = uc.W[:0]
	if err != nil {
		return nil, err
	}
	var resp http1.Response
	for {
		if err := uc.R.ReadResponse(&resp, head.Method, nil); err != nil {
			return nil, err
		}
		if resp.Headers.Status >= 200 {
			break
		}
	}
	st := resp.Headers.Status
	if s.cl.Stats != nil {
		s.cl.Stats.Response(st)
	}
	// The head's slices alias the reader's buffer: convert before the
	// body is read.
	out := s.answer(&resp.Headers, h)
	b, err := io.ReadAll(io.LimitReader(uc.R.BodyReader(resp.Framing, resp.ContentLength), maxAuthzBody+1))
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if len(b) > maxAuthzBody {
		return nil, fmt.Errorf("body longer than %d bytes", maxAuthzBody)
	}
	keep = resp.KeepAlive
	if st >= 500 {
		return nil, fmt.Errorf("%w (%d)", errAuthzServer, st)
	}
	if d := out.GetDenied(); d != nil {
		d.Body = string(b)
	}
	return out, nil
}

// hdrHeadersToRemove lists, in an allowing answer, the request headers to remove
// before the request goes upstream (Envoy's x-envoy-auth-headers-to-remove).
const hdrHeadersToRemove = "x-envoy-auth-headers-to-remove"

// answer maps the service's response head to the plugin API's response:
// a 2xx allows (Envoy: only 200; nginx's auth_request: any 2xx, which
// oauth2-proxy's 202 needs), with the allowed upstream and client headers; any other
// status denies, with the allowed client headers (the body is filled in by
// the caller). h is the request, for allowed_upstream_headers_to_append.
func (s *httpService) answer(r *httpfilter.ResponseHeaders, h *httpfilter.RequestHeaders) *authapi.CheckResponse {
	if r.Status < 200 || r.Status > 299 {
		d := &authapi.DeniedResponse{Status: uint32(r.Status)}
		for i, fd := range r.Fields {
			name := string(fd.Name)
			if isFraming(name) || name == hdrHeadersToRemove {
				continue
			}
			if s.client == nil && name == "host" || s.client != nil && !s.client.Match(name) {
				continue
			}
			// The first field of a name replaces the local reply's own;
			// later ones (several set-cookie) are kept beside it.
			first := true
			for _, p := range r.Fields[:i] {
				if string(p.Name) == name {
					first = false
					break
				}
			}
			d.Headers = append(d.Headers, headerOption(name, fd.Value, !first))
		}
		return &authapi.CheckResponse{Result: &authpb.CheckResponse_Denied{Denied: d}}
	}
	ok := &authapi.OkResponse{}
	for _, fd := range r.Fields {
		name := string(fd.Name)
		if name == hdrHeadersToRemove {
			for _, n := range strings.Split(string(fd.Value), ",") {
				n = strings.ToLower(strings.TrimSpace(n))
				if n != "" && n != "host" && http1.ValidFieldName(n) {
					ok.HeadersToRemove = append(ok.HeadersToRemove, n)
				}
			}
			continue
		}
		if isFraming(name) || name == "host" {
			continue
		}
		if s.upSet.Match(name) {
			ok.Headers = append(ok.Headers, headerOption(name, fd.Value, false))
		}
		if s.upAppend.Match(name) && h.Has(name) {
			ok.Headers = append(ok.Headers, headerOption(name, fd.Value, true))
		}
		if s.clientOK.Match(name) {
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, headerOption(name, fd.Value, true))
		}
	}
	return authapi.AllowWith(ok)
}

func headerOption(name string, value []byte, appendValue bool) *authapi.HeaderValueOption {
	return &authapi.HeaderValueOption{Header: &authapi.HeaderValue{Key: name, Value: string(value)}, Append: appendValue}
}

// isFraming reports whether name is a field of the message's framing or
// connection, which sluice writes itself.
func isFraming(name string) bool {
	switch name {
	case "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade":
		return true
	}
	return false
}
