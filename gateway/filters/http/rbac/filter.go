package rbac

import (
	"bytes"
	"net/netip"
	"sync"
	"unsafe"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/rbacmatch"
)

// Stats are the filter's counters, http.<hcm>.<stat_prefix>rbac.{allowed,
// denied, shadow_allowed, shadow_denied}: requests let through, answered
// 403, and in shadow mode those the policies would let through or deny.
type Stats = rbacmatch.Stats

// DeniedBody is the body of the 403 answering a denied request (Envoy's).
const DeniedBody = "RBAC: access denied"

// Factory is a built rbac filter: immutable policies and the counters,
// safe for concurrent use.
type Factory struct {
	deny     bool // action DENY
	shadow   bool
	policies []policy
	// noneDetails is the response details of a request denied by no
	// policy (ALLOW without a match).
	noneDetails string

	stats Stats
}

// policy is a compiled Policy.
type policy struct {
	name        string
	details     string // rbac_access_denied_matched_policy[<name>]
	permissions []rule
	principals  []rule
}

// The kinds of rule.
const (
	ruleAny byte = iota + 1
	ruleHeader
	rulePath
	ruleMethods
	ruleDestinationIP
	ruleDestinationPort
	ruleServerName
	ruleDirectRemoteIP
	ruleRemoteIP
	ruleSourceIP
	ruleAuthenticated
	ruleAnd
	ruleOr
	ruleNot
)

// The parts of the request head a header matcher may name.
const (
	headMethod byte = iota + 1
	headPath
	headAuthority
	headScheme
)

// rule is a compiled permission or principal: a tagged union, matched by
// one switch, so that matching calls no interface and allocates nothing.
type rule struct {
	kind byte
	// header
	header  string
	head    byte // a part of the request head instead of a field
	present bool
	invert  bool
	// header, url_path, requested_server_name, principal_name
	str    rbacmatch.Matcher
	hasStr bool // authenticated: principal_name set
	// methods
	methods []string
	// addresses, ports
	ips   rbacmatch.IPs
	ports rbacmatch.Ports
	// and, or, not
	sub []rule
}

// Stats returns the factory's counters.
func (f *Factory) Stats() *Stats { return &f.stats }

// request is what the rules look at, with what is worked out from it at
// most once per request.
type request struct {
	h    *httpfilter.RequestHeaders
	info *httpfilter.StreamInfo

	remote     netip.Addr // remote_ip's address
	remoteDone bool
	joined     []byte // repeated header fields joined by ","
}

// Decide returns whether the request with head h and stream info may
// pass under the policies, and the index of the policy that matched (-1
// for none). Shadow mode does not change the decision, only whether it is
// enforced.
func (f *Factory) Decide(h *httpfilter.RequestHeaders, info *httpfilter.StreamInfo) (allowed bool, policy int) {
	q := request{h: h, info: info}
	return f.decide(&q)
}

func (f *Factory) decide(q *request) (bool, int) {
	for i := range f.policies {
		if f.policies[i].matches(q) {
			return rbacmatch.Decide(f.deny, i), i
		}
	}
	return rbacmatch.Decide(f.deny, -1), -1
}

func (p *policy) matches(q *request) bool {
	return anyMatches(p.permissions, q) && anyMatches(p.principals, q)
}

func anyMatches(rs []rule, q *request) bool {
	for i := range rs {
		if rs[i].matches(q) {
			return true
		}
	}
	return false
}

func (r *rule) matches(q *request) bool {
	info := q.info
	switch r.kind {
	case ruleAny:
		return true
	case ruleHeader:
		return r.matchHeader(q)
	case rulePath:
		return r.str.Match(pathOnly(q.h.Path))
	case ruleMethods:
		for _, m := range r.methods {
			if string(q.h.Method) == m {
				return true
			}
		}
		return false
	case ruleDestinationIP:
		return r.ips.Contains(info.DownstreamLocal.Addr())
	case ruleDestinationPort:
		return r.ports.Contains(info.DownstreamLocal.Port())
	case ruleServerName:
		return r.str.MatchString(info.ServerName)
	case ruleDirectRemoteIP:
		a := info.DownstreamDirectRemote
		if !a.IsValid() {
			a = info.DownstreamRemote
		}
		return r.ips.Contains(a.Addr())
	case ruleRemoteIP:
		return r.ips.Contains(q.remoteAddr())
	case ruleSourceIP:
		a := info.DownstreamPeer
		if !a.IsValid() {
			a = info.DownstreamRemote
		}
		return r.ips.Contains(a.Addr())
	case ruleAuthenticated:
		return r.matchCertificate(q)
	case ruleAnd:
		for i := range r.sub {
			if !r.sub[i].matches(q) {
				return false
			}
		}
		return true
	case ruleOr:
		return anyMatches(r.sub, q)
	case ruleNot:
		return !r.sub[0].matches(q)
	}
	return false
}

// pathOnly returns the path of an origin-form target without its query
// (and fragment).
func pathOnly(p []byte) []byte {
	if i := bytes.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// matchHeader applies Envoy's header matching: a missing header matches
// only an inverted present matcher; repeated fields are joined by ",".
func (r *rule) matchHeader(q *request) bool {
	v, ok := r.headerValue(q)
	if !ok {
		return r.present && r.invert
	}
	if r.present {
		return !r.invert
	}
	return r.str.Match(v) != r.invert
}

func (r *rule) headerValue(q *request) ([]byte, bool) {
	h := q.h
	switch r.head {
	case headMethod:
		return h.Method, h.Method != nil
	case headPath:
		return h.Path, h.Path != nil
	case headAuthority:
		return h.Authority, h.Authority != nil
	case headScheme:
		return h.Scheme, h.Scheme != nil
	}
	var v []byte
	n := 0
	for i := range h.Fields {
		f := &h.Fields[i]
		if string(f.Name) != r.header {
			continue
		}
		switch n {
		case 0:
			v = f.Value
		case 1:
			q.joined = append(append(append(q.joined[:0], v...), ','), f.Value...)
			v = q.joined
		default:
			q.joined = append(append(q.joined, ','), f.Value...)
			v = q.joined
		}
		n++
	}
	return v, n > 0
}

// remoteAddr returns the client address as the connection manager sees
// it, Envoy's remote address: the stream's DownstreamRemote, which the
// connection manager (DownstreamPeer set) derived from the peer and
// x-forwarded-for by use_remote_address and xff_num_trusted_hops. Without
// a connection manager's verdict it is the last x-forwarded-for address
// (xff_num_trusted_hops 0), else the peer.
func (q *request) remoteAddr() netip.Addr {
	if q.remoteDone {
		return q.remote
	}
	q.remoteDone = true
	q.remote = q.info.DownstreamRemote.Addr()
	if q.info.DownstreamPeer.IsValid() {
		// The connection manager found the client already, with its
		// use_remote_address and xff_num_trusted_hops.
		return q.remote
	}
	var last []byte
	for i := range q.h.Fields {
		if string(q.h.Fields[i].Name) == "x-forwarded-for" {
			last = q.h.Fields[i].Value
		}
	}
	if a, ok := LastForwardedFor(last); ok {
		q.remote = a
	}
	return q.remote
}

// LastForwardedFor parses the last address of an x-forwarded-for value.
// It does not allocate. Addresses with a zone, ports and brackets are not
// addresses here (Envoy's parsing neither takes them).
func LastForwardedFor(v []byte) (netip.Addr, bool) {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = bytes.Trim(v, " \t")
	if len(v) == 0 || len(v) > 45 || bytes.IndexByte(v, '%') >= 0 {
		return netip.Addr{}, false
	}
	// The string aliases v only during the call: an address without a
	// zone keeps no reference to its text.
	a, err := netip.ParseAddr(unsafe.String(&v[0], len(v)))
	return a, err == nil
}

// matchCertificate applies Envoy's authenticated principal: a verified
// client certificate, whose URI SANs, else DNS SANs, else subject match
// principal_name when it is set.
func (r *rule) matchCertificate(q *request) bool {
	cs := q.info.TLS
	if cs == nil || len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return false
	}
	if !r.hasStr {
		return true
	}
	cert := cs.PeerCertificates[0]
	for _, u := range cert.URIs {
		if r.str.MatchString(u.String()) {
			return true
		}
	}
	for _, d := range cert.DNSNames {
		if r.str.MatchString(d) {
			return true
		}
	}
	return r.str.MatchString(cert.Subject.String())
}

// filters recycles the per-stream instances: a stream's filter costs no
// allocation.
var filters = sync.Pool{New: func() any { return new(filter) }}

// NewFilter implements httpfilter.Factory.
func (f *Factory) NewFilter(cb httpfilter.DecoderCallbacks) any {
	r := filters.Get().(*filter)
	r.f, r.cb = f, cb
	return r
}

// filter enforces the policies on one stream. Its methods run on the
// stream's goroutine, one at a time; it goes back to the pool in
// OnDestroy.
type filter struct {
	f  *Factory
	cb httpfilter.DecoderCallbacks
	q  request
}

// httpfilter.DecoderFilter

// DecodeHeaders implements httpfilter.DecoderFilter. Everything the
// policies look at is in the request head and the connection, so the
// decision is taken here; a denied request is answered 403 with Envoy's
// body, flag RBAC and details rbac_access_denied_matched_policy[<name>],
// before any of it goes upstream.
func (r *filter) DecodeHeaders(h *httpfilter.RequestHeaders, _ bool) httpfilter.HeadersStatus {
	f := r.f
	r.q = request{h: h, info: r.cb.Info(), joined: r.q.joined[:0]}
	allowed, i := f.decide(&r.q)
	r.q.h, r.q.info = nil, nil
	if !f.stats.Count(f.shadow, allowed) {
		return httpfilter.HeadersContinue
	}
	details := f.noneDetails
	if i >= 0 {
		details = f.policies[i].details
	}
	r.cb.SendLocalReply(httpfilter.LocalReply{Status: 403, Body: DeniedBody,
		Flags: httpfilter.FlagRBACAccessDenied, Details: details})
	return httpfilter.HeadersStopIteration
}

// DecodeData implements httpfilter.DecoderFilter.
func (r *filter) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	return httpfilter.DataContinue
}

// DecodeTrailers implements httpfilter.DecoderFilter.
func (r *filter) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}

// OnDestroy implements httpfilter.DecoderFilter: the instance goes back
// to the pool (a large joined buffer is dropped).
func (r *filter) OnDestroy() {
	r.f, r.cb = nil, nil
	if cap(r.q.joined) > 4096 {
		r.q.joined = nil
	}
	filters.Put(r)
}

var (
	_ httpfilter.Factory       = (*Factory)(nil)
	_ httpfilter.DecoderFilter = (*filter)(nil)
)
