package authapi

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidResponse is wrapped by Validate's errors.
var ErrInvalidResponse = errors.New("authapi: invalid check response")

// Validate checks a response as sluice does before applying it: exactly one
// of OK and denied, a denied status of 0 or 200..599, and header names that
// are HTTP tokens (lowercase is not required) and values without CR, LF or
// NUL. Removing pseudo-headers or host is refused, and so is setting a
// framing or hop-by-hop field (content-length, transfer-encoding,
// connection, ...) on an allowed request or its response: sluice frames
// messages itself, and a content-length that does not match the body would
// let its rest reach the upstream as another request.
func Validate(r *CheckResponse) error {
	if r == nil {
		return fmt.Errorf("%w: empty", ErrInvalidResponse)
	}
	if ok := r.GetOk(); ok != nil {
		if err := validHeaders(ok.Headers); err != nil {
			return err
		}
		if err := validHeaders(ok.ResponseHeadersToAdd); err != nil {
			return err
		}
		if err := noFraming(ok.Headers); err != nil {
			return err
		}
		if err := noFraming(ok.ResponseHeadersToAdd); err != nil {
			return err
		}
		for _, n := range ok.HeadersToRemove {
			if !validName(n) || n == "host" || n == "Host" {
				return fmt.Errorf("%w: cannot remove header %q", ErrInvalidResponse, n)
			}
		}
		return nil
	}
	if d := r.GetDenied(); d != nil {
		if d.Status != 0 && (d.Status < 200 || d.Status > 599) {
			return fmt.Errorf("%w: denied status %d", ErrInvalidResponse, d.Status)
		}
		return validHeaders(d.Headers)
	}
	return fmt.Errorf("%w: neither ok nor denied", ErrInvalidResponse)
}

func validHeaders(hs []*HeaderValueOption) error {
	for _, h := range hs {
		hv := h.GetHeader()
		if hv == nil || !validName(hv.Key) {
			return fmt.Errorf("%w: header name %q", ErrInvalidResponse, hv.GetKey())
		}
		if !validValue(hv.Value) {
			return fmt.Errorf("%w: header %q value %q", ErrInvalidResponse, hv.Key, hv.Value)
		}
	}
	return nil
}

// framingNames are the fields a plugin may not set on an allowed request
// or its response.
var framingNames = []string{"content-length", "transfer-encoding", "connection", "keep-alive",
	"proxy-connection", "te", "trailer", "upgrade"}

func noFraming(hs []*HeaderValueOption) error {
	for _, h := range hs {
		for _, n := range framingNames {
			if strings.EqualFold(h.GetHeader().GetKey(), n) {
				return fmt.Errorf("%w: cannot set framing header %q", ErrInvalidResponse, h.GetHeader().GetKey())
			}
		}
	}
	return nil
}

// validName reports whether s is an RFC 9110 token.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c < 128 && tokenPunct[c]:
		default:
			return false
		}
	}
	return true
}

var tokenPunct = [128]bool{'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true}

// validValue reports whether s may be a header value: no CR, LF or NUL, no
// other control character than tab, no leading or trailing whitespace.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return len(s) == 0 || (s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t')
}
