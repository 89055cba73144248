package http1

// Error is a protocol error in a message head or body, with the status sluice
// answers it with: 400 (malformed), 414 (request line too long), 431 (head too
// large or too many fields), 501 (unsupported transfer coding) or 505
// (unsupported HTTP version). Errors from ReadResponse always carry 502.
// Errors are returned as *Error; compare with errors.As, never by pointer.
type Error struct {
	Status int    // HTTP status to answer with
	Reason string // short lowercase description
}

// Error returns "http1: <reason>".
func (e *Error) Error() string { return "http1: " + e.Reason }

// Package-level errors: the parser returns these shared values so that the
// error path of the hot parser does not allocate. Callers must not modify them.
var (
	errBareLF          = &Error{400, "bare LF line ending"}
	errEmptyLines      = &Error{400, "more than one empty line before the start line"}
	errRequestLine     = &Error{400, "malformed request line"}
	errMethod          = &Error{400, "invalid method"}
	errTarget          = &Error{400, "invalid request target"}
	errTargetForm      = &Error{400, "request target form not allowed for method"}
	errVersion         = &Error{400, "malformed HTTP version"}
	errVersionSupport  = &Error{505, "unsupported HTTP version"}
	errLineTooLong     = &Error{414, "request line too long"}
	errHeadTooLarge    = &Error{431, "head too large"}
	errTooManyFields   = &Error{431, "too many header fields"}
	errObsFold         = &Error{400, "obsolete line folding"}
	errFieldName       = &Error{400, "invalid field name"}
	errFieldSpace      = &Error{400, "whitespace before colon in field line"}
	errFieldNoColon    = &Error{400, "field line without colon"}
	errFieldValue      = &Error{400, "invalid character in field value"}
	errHostMissing     = &Error{400, "missing host"}
	errHostRepeated    = &Error{400, "more than one host"}
	errHostInvalid     = &Error{400, "invalid host"}
	errCLRepeated      = &Error{400, "repeated content-length"}
	errCLInvalid       = &Error{400, "invalid content-length"}
	errCLAndTE         = &Error{400, "both content-length and transfer-encoding"}
	errTEUnsupported   = &Error{501, "unsupported transfer coding"}
	errTERepeated      = &Error{400, "chunked applied more than once"}
	errTEInvalid       = &Error{400, "invalid transfer-encoding"}
	errTEHTTP10        = &Error{400, "transfer-encoding in an HTTP/1.0 request"}
	errConnection      = &Error{400, "invalid connection option"}
	errStatusLine      = &Error{502, "malformed status line"}
	errStatusCode      = &Error{502, "invalid status code"}
	errStatusTooLong   = &Error{502, "status line too long"}
	errChunkSize       = &Error{400, "invalid chunk size"}
	errChunkOverflow   = &Error{400, "chunk size overflow"}
	errChunkExt        = &Error{400, "invalid chunk extension"}
	errChunkCRLF       = &Error{400, "missing CRLF after chunk data"}
	errChunkLineLong   = &Error{400, "chunk size line too long"}
	errTrailersTooLong = &Error{431, "trailer section too large"}
)

// asResponseError maps a head error to the 502 every invalid response gets.
func asResponseError(err error) error {
	if e, ok := err.(*Error); ok && e.Status != 502 {
		return &Error{Status: 502, Reason: e.Reason}
	}
	return err
}
