package http1

import "github.com/sluice-proxy/sluice/gateway/httpfilter"

// Response is a parsed response head. Its slices alias the Reader's buffer
// (see ReadResponse).
type Response struct {
	// Headers holds the status code and the end-to-end fields.
	Headers httpfilter.ResponseHeaders
	// Major and Minor are the HTTP version: 1.0 or 1.1.
	Major, Minor int
	// Framing tells how the body is delimited (RFC 9112 §6.3).
	Framing Framing
	// ContentLength is the Content-Length value, -1 when absent. With
	// NoBody framing it is kept for responses to HEAD and for 304, where it
	// describes the representation rather than this message.
	ContentLength int64
	// KeepAlive reports whether the connection may carry another request:
	// for HTTP/1.1 unless Connection: close, for HTTP/1.0 only with
	// Connection: keep-alive; never when the body runs until close.
	KeepAlive bool
	// Upgrade is the Upgrade field value when Connection has the "upgrade"
	// option, else nil.
	Upgrade []byte
	// HeadBytes is the size of the head on the wire, status line and
	// final empty line included.
	HeadBytes int
}

func (p *Response) reset() {
	p.Headers.Reset()
	*p = Response{Headers: p.Headers, ContentLength: -1}
}

// ReadResponse reads and parses one response head into resp, reusing its
// Fields capacity. 1xx heads are returned like any other: the caller loops
// until a final status. method is the request's method, which the framing of
// the response depends on (HEAD, CONNECT).
//
// Slices in resp alias the Reader's buffer as for ReadRequest. Errors are
// io.EOF (closed before any byte), io.ErrUnexpectedEOF, the source's error,
// or an *Error whose Status is always 502.
func (r *Reader) ReadResponse(resp *Response, method []byte, lim *Limits) error {
	r.unpin()
	r.lim = lim.resolve()
	resp.reset()
	n, err := r.scanHead(&r.lim, true, errStatusTooLong)
	if err != nil {
		return asResponseError(err)
	}
	head := r.buf[r.r : r.r+n]
	r.r += n
	r.pinHead()
	resp.HeadBytes = n
	return asResponseError(r.parseResponse(resp, method, head))
}

func (r *Reader) parseResponse(resp *Response, method, head []byte) error {
	line, rest := nextLine(head)
	if err := parseStatusLine(resp, line); err != nil {
		return err
	}
	h := &resp.Headers
	s := hopState{contentLength: -1}
	r.connVals = r.connVals[:0]
	for len(rest) > 2 {
		line, rest = nextLine(rest)
		name, value, err := parseField(line)
		if err != nil {
			return err
		}
		hop, err := r.hopField(&s, name, value)
		if err != nil {
			return err
		}
		if !hop {
			h.Fields = append(h.Fields, httpfilter.Field{Name: name, Value: value})
		}
	}
	if s.te && s.contentLength >= 0 {
		return errCLAndTE
	}
	if s.te && resp.Minor == 0 {
		return errTEHTTP10
	}
	status := h.Status
	resp.KeepAlive = !s.close && (resp.Minor == 1 || s.keepAlive)
	switch {
	case status < 200 || status == 204,
		string(method) == "CONNECT" && status < 300:
		resp.Framing = NoBody
		// These responses may not carry Content-Length (RFC 9110 §8.6,
		// §9.3.6); one sent anyway describes nothing. Passed on to an
		// HTTP/2 or HTTP/3 client it would make the response malformed
		// (a length that END_STREAM without DATA contradicts, RFC 9113
		// §8.1.1), so it is dropped here.
		if s.contentLength >= 0 {
			h.Del("content-length")
		}
	case status == 304 || string(method) == "HEAD":
		resp.Framing = NoBody
		resp.ContentLength = s.contentLength
	case s.te:
		resp.Framing = Chunked
	case s.contentLength >= 0:
		resp.Framing = ContentLength
		resp.ContentLength = s.contentLength
	default:
		resp.Framing = UntilClose
		resp.KeepAlive = false
	}
	if s.upgradeOpt {
		resp.Upgrade = s.upgrade
	}
	r.removeNamed(&h.Headers)
	return nil
}

// parseStatusLine parses HTTP-version SP 3DIGIT SP reason-phrase. The SP
// before an empty reason phrase may be missing.
func parseStatusLine(resp *Response, line []byte) error {
	if len(line) < 12 || line[8] != ' ' {
		return errStatusLine
	}
	major, minor, err := parseVersion(line[:8])
	if err != nil {
		return errStatusLine
	}
	code := line[9:12]
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) {
		return errStatusCode
	}
	status := int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if status < 100 || status > 599 {
		return errStatusCode
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return errStatusCode
		}
		if !validValue(line[13:]) {
			return errStatusLine
		}
	}
	resp.Major, resp.Minor = major, minor
	resp.Headers.Status = status
	return nil
}
