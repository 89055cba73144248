package http1

import (
	"bytes"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// Request is a parsed request head. Its slices alias the Reader's buffer
// (see ReadRequest).
type Request struct {
	// Headers holds the pseudo-fields Method, Authority and Path and the
	// end-to-end fields. Scheme is left for the caller to set.
	Headers httpfilter.RequestHeaders
	// Major and Minor are the HTTP version: 1.0 or 1.1.
	Major, Minor int
	// Framing tells how the body is delimited: NoBody, ContentLength or
	// Chunked.
	Framing Framing
	// ContentLength is the Content-Length value, -1 when absent.
	ContentLength int64
	// KeepAlive reports whether the connection may carry another request:
	// for HTTP/1.1 unless Connection: close, for HTTP/1.0 only with
	// Connection: keep-alive.
	KeepAlive bool
	// ExpectContinue reports Expect: 100-continue on an HTTP/1.1 request.
	// The Expect field is removed from Fields.
	ExpectContinue bool
	// Upgrade is the Upgrade field value when Connection has the "upgrade"
	// option (e.g. "websocket") on an HTTP/1.1 request, else nil.
	Upgrade []byte
	// AbsoluteForm reports that the target was in absolute-form; Authority
	// was taken from it rather than from Host.
	AbsoluteForm bool
}

func (q *Request) reset() {
	q.Headers.Reset()
	*q = Request{Headers: q.Headers, ContentLength: -1}
}

var (
	slash    = []byte("/")
	asterisk = []byte("*")
)

// ReadRequest reads and parses one request head into req, reusing its
// Fields capacity. The slices in req alias the Reader's buffer and stay valid
// until the next ReadRequest or ReadResponse call; the bytes of the head are
// not overwritten while its body is read. The caller must have read the
// previous request's body to its end first.
//
// It returns io.EOF when the peer closed the connection before sending any
// byte of a request (one empty line aside), io.ErrUnexpectedEOF when it closed
// in the middle of a head, the source's error, or an *Error carrying the
// status to answer with. A read deadline error (os.ErrDeadlineExceeded) is
// not sticky: after extending the deadline, ReadRequest may be called again
// and starts over from the bytes already buffered.
func (r *Reader) ReadRequest(req *Request, lim *Limits) error {
	r.unpin()
	r.lim = lim.resolve()
	req.reset()
	n, err := r.scanHead(&r.lim, true, errLineTooLong)
	if err != nil {
		return err
	}
	head := r.buf[r.r : r.r+n]
	r.r += n
	r.pinHead()
	return r.parseRequest(req, head)
}

func (r *Reader) parseRequest(req *Request, head []byte) error {
	line, rest := nextLine(head)
	target, err := parseRequestLine(req, line)
	if err != nil {
		return err
	}
	h := &req.Headers
	s := hopState{contentLength: -1}
	r.connVals = r.connVals[:0]
	var host []byte
	hosts := 0
	for len(rest) > 2 {
		line, rest = nextLine(rest)
		name, value, err := parseField(line)
		if err != nil {
			return err
		}
		switch string(name) {
		case "host":
			hosts++
			if hosts > 1 {
				return errHostRepeated
			}
			if !validHost(value, false) {
				return errHostInvalid
			}
			host = value
			continue
		case "expect":
			if equalFold(value, "100-continue") {
				req.ExpectContinue = req.Minor == 1
				continue
			}
		}
		hop, err := r.hopField(&s, name, value)
		if err != nil {
			return err
		}
		if !hop {
			h.Fields = append(h.Fields, httpfilter.Field{Name: name, Value: value})
		}
	}
	if req.Minor == 1 && hosts == 0 {
		return errHostMissing
	}
	if err := parseTarget(req, target); err != nil {
		return err
	}
	if !req.AbsoluteForm && h.Authority == nil {
		h.Authority = host
	}
	switch {
	case s.te && s.contentLength >= 0:
		return errCLAndTE
	case s.te && req.Minor == 0:
		return errTEHTTP10
	case s.te:
		req.Framing = Chunked
	case s.contentLength >= 0:
		req.Framing = ContentLength
		req.ContentLength = s.contentLength
	}
	req.KeepAlive = !s.close && (req.Minor == 1 || s.keepAlive)
	if s.upgradeOpt && req.Minor == 1 {
		// An HTTP/1.0 request's Upgrade is ignored (RFC 9110 §7.8): an
		// HTTP/1.0 proxy may have passed it on without understanding
		// Connection. The field is removed either way.
		req.Upgrade = s.upgrade
	}
	r.removeNamed(&h.Headers)
	return nil
}

// parseRequestLine parses method SP request-target SP HTTP-version, setting
// the method and version, and returns the target for parseTarget.
func parseRequestLine(req *Request, line []byte) (target []byte, err error) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, errRequestLine
	}
	method := line[:sp]
	if !validToken(method) {
		return nil, errMethod
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, errRequestLine
	}
	target, version := line[:sp], line[sp+1:]
	if len(target) == 0 {
		return nil, errRequestLine
	}
	if !validTargetBytes(target) {
		return nil, errTarget
	}
	major, minor, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	req.Headers.Method = method
	req.Major, req.Minor = major, minor
	return target, nil
}

// parseVersion accepts exactly HTTP/1.0 and HTTP/1.1. Other well-formed
// versions get errVersionSupport (505), anything else errVersion.
func parseVersion(v []byte) (major, minor int, err error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, 0, errVersion
	}
	if v[5] != '1' || (v[7] != '0' && v[7] != '1') {
		return 0, 0, errVersionSupport
	}
	return 1, int(v[7] - '0'), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseTarget classifies the request target (RFC 9112 §3.2) and sets Path,
// and Authority for absolute-form and authority-form.
func parseTarget(req *Request, target []byte) error {
	h := &req.Headers
	connect := string(h.Method) == "CONNECT"
	switch {
	case target[0] == '/':
		if connect {
			return errTargetForm
		}
		h.Path = target
	case len(target) == 1 && target[0] == '*':
		if string(h.Method) != "OPTIONS" {
			return errTargetForm
		}
		h.Path = target
	case connect:
		if !validHost(target, true) {
			return errTarget
		}
		h.Authority = target
	default:
		return parseAbsolute(req, target)
	}
	return nil
}

// parseAbsolute handles an absolute-form target: http:// or https://,
// then a non-empty authority without userinfo, then the path and query.
func parseAbsolute(req *Request, target []byte) error {
	var rest []byte
	switch {
	case len(target) > 7 && equalFold(target[:7], "http://"):
		rest = target[7:]
	case len(target) > 8 && equalFold(target[:8], "https://"):
		rest = target[8:]
	default:
		return errTarget
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' {
			end = i
			break
		}
	}
	authority, path := rest[:end], rest[end:]
	if !validHost(authority, false) {
		return errTarget
	}
	h := &req.Headers
	h.Authority = authority
	req.AbsoluteForm = true
	switch {
	case len(path) == 0 && string(h.Method) == "OPTIONS":
		h.Path = asterisk
	case len(path) == 0:
		h.Path = slash
	case path[0] == '?':
		// An empty path before a query: the origin-form path is "/".
		// Rare enough to allocate.
		p := make([]byte, 0, len(path)+1)
		h.Path = append(append(p, '/'), path...)
	default:
		h.Path = path
	}
	return nil
}
