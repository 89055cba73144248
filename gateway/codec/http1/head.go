package http1

import (
	"bytes"
	"io"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// scanHead finds the end of a head at the unread bytes, reading more as
// needed, and returns its length including the final empty line. With
// startLine, the first line is a request or status line (bounded by
// lim.lineBytes, failing with lineErr) and one empty line before it is
// skipped (RFC 9112 §2.2); without, the section is a trailer section whose
// field lines start at once. Every line must end in CRLF.
func (r *Reader) scanHead(lim *limits, startLine bool, lineErr error) (int, error) {
	scan := 0      // bytes of the head checked for '\n', relative to r.r
	lineStart := 0 // start of the current line, relative to r.r
	fields := 0    // complete field lines seen
	first := startLine
	skipped := false
	for {
		b := r.buf[r.r:r.w]
		for {
			i := bytes.IndexByte(b[scan:], '\n')
			if i < 0 {
				scan = len(b)
				break
			}
			nl := scan + i
			if nl == lineStart || b[nl-1] != '\r' {
				return 0, errBareLF
			}
			if nl+1 > lim.headerBytes {
				return 0, errHeadTooLarge
			}
			if nl-1 == lineStart { // empty line
				if !first {
					return nl + 1, nil
				}
				if skipped {
					return 0, errEmptyLines
				}
				skipped = true
				r.r += 2
				b = b[2:]
				scan, lineStart = 0, 0
				continue
			}
			if first {
				if nl-1-lineStart > lim.lineBytes {
					return 0, lineErr
				}
				first = false
			} else {
				fields++
				if fields > lim.headers {
					return 0, errTooManyFields
				}
			}
			lineStart, scan = nl+1, nl+1
		}
		if first && len(b)-lineStart > lim.lineBytes+1 {
			return 0, lineErr
		}
		if len(b) >= lim.headerBytes {
			return 0, errHeadTooLarge
		}
		if err := r.fill(lim.headerBytes + 1); err != nil {
			switch {
			case err == errBufferFull:
				return 0, errHeadTooLarge
			case err == io.EOF && len(b) == 0 && startLine:
				return 0, io.EOF
			}
			return 0, unexpected(err)
		}
	}
}

// nextLine splits the first CRLF-terminated line off a head that scanHead
// has validated.
func nextLine(head []byte) (line, rest []byte) {
	i := bytes.IndexByte(head, '\n')
	return head[:i-1], head[i+1:]
}

// parseField splits a field line into its name, lowercased in place, and its
// value without surrounding whitespace, and validates both.
func parseField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, errObsFold
	}
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		if c == ':' {
			break
		}
		if !tokenTable[c] {
			if c == ' ' || c == '\t' {
				return nil, nil, errFieldSpace
			}
			return nil, nil, errFieldName
		}
		if 'A' <= c && c <= 'Z' {
			line[i] = c + 'a' - 'A'
		}
	}
	if i == len(line) {
		return nil, nil, errFieldNoColon
	}
	if i == 0 {
		return nil, nil, errFieldName
	}
	value = trimOWS(line[i+1:])
	if !validValue(value) {
		return nil, nil, errFieldValue
	}
	return line[:i], value, nil
}

// hopState accumulates what the framing and hop-by-hop fields of one head
// say, shared by requests and responses.
type hopState struct {
	contentLength int64 // -1 when absent
	te            bool  // Transfer-Encoding present
	chunked       bool  // Transfer-Encoding is exactly a final chunked
	close         bool  // Connection: close
	keepAlive     bool  // Connection: keep-alive
	upgradeOpt    bool  // Connection: upgrade
	upgrade       []byte
}

// hopField records a framing or hop-by-hop field and reports whether the
// field stays out of Headers.Fields (Content-Length is recorded but kept).
// Connection values that name fields are kept in r.connVals for
// removeNamed.
func (r *Reader) hopField(s *hopState, name, value []byte) (bool, error) {
	switch string(name) {
	case "content-length":
		if s.contentLength >= 0 {
			return true, errCLRepeated
		}
		n, ok := parseContentLength(value)
		if !ok {
			return true, errCLInvalid
		}
		s.contentLength = n
		// Content-Length is end-to-end: it stays in Fields, as HTTP/2 and
		// HTTP/3 carry it, so filters and the other codec see it.
		return false, nil
	case "transfer-encoding":
		if err := s.transferEncoding(value); err != nil {
			return true, err
		}
	case "connection":
		names := false // names a field other than the usual options
		for list := value; list != nil; {
			var e []byte
			e, list = nextElem(list)
			switch {
			case len(e) == 0:
			case !validToken(e):
				return true, errConnection
			case equalFold(e, "close"):
				s.close = true
			case equalFold(e, "keep-alive"):
				// The Keep-Alive field is removed anyway.
				s.keepAlive = true
			case equalFold(e, "upgrade"):
				// The Upgrade field is removed anyway.
				s.upgradeOpt = true
			default:
				names = true
			}
		}
		if names {
			r.connVals = append(r.connVals, value)
		}
	case "upgrade":
		if s.upgrade == nil {
			s.upgrade = value
		}
	case "keep-alive", "proxy-connection":
	case "te":
		return string(value) != "trailers", nil
	default:
		return false, nil
	}
	return true, nil
}

// transferEncoding checks one Transfer-Encoding field: the codings, over
// every such field, must be exactly one final chunked.
func (s *hopState) transferEncoding(value []byte) error {
	seen := false
	for list := value; list != nil; {
		var e []byte
		e, list = nextElem(list)
		switch {
		case len(e) == 0:
			continue
		case s.chunked:
			// A coding after chunked: chunked is not final.
			if equalFold(e, "chunked") {
				return errTERepeated
			}
			return errTEUnsupported
		case equalFold(e, "chunked"):
			s.chunked = true
		case validToken(e):
			return errTEUnsupported
		default:
			return errTEInvalid
		}
		seen = true
	}
	if !seen {
		return errTEInvalid
	}
	s.te = true
	return nil
}

// removeNamed deletes the fields that the head's Connection fields name
// (RFC 9110 §7.6.1).
func (r *Reader) removeNamed(h *httpfilter.Headers) {
	if len(r.connVals) == 0 {
		return
	}
	out := 0
	for _, f := range h.Fields {
		if !r.namedByConnection(f.Name) {
			h.Fields[out] = f
			out++
		}
	}
	clear(h.Fields[out:])
	h.Fields = h.Fields[:out]
}

func (r *Reader) namedByConnection(name []byte) bool {
	for _, v := range r.connVals {
		for list := v; list != nil; {
			var e []byte
			e, list = nextElem(list)
			if equalFoldBytes(e, name) {
				return true
			}
		}
	}
	return false
}
