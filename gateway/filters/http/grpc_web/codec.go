package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// trailerFlag marks a gRPC-Web frame that carries the response's trailers
// (the most significant bit of the frame's flags byte).
const trailerFlag = 0x80

// frameHeaderLen is the length of a gRPC frame's header: one flags byte
// and a four-byte big-endian payload length.
const frameHeaderLen = 5

var errBase64 = errors.New("grpc_web: invalid base64 data")

// textDecoder decodes a grpc-web-text request body as it arrives: base64
// (the standard alphabet, padding mandatory) read in groups of four
// characters; an incomplete group waits for the next chunk. Padding may end
// any group, not only the last one, so a body made of separately encoded
// messages decodes too.
type textDecoder struct {
	held [4]byte
	n    int // characters held, 0 … 3
}

// decode appends to dst what src decodes to and keeps the characters of an
// incomplete group for the next call. It fails on anything but base64
// (line breaks included, which Go's decoder would skip).
func (d *textDecoder) decode(dst, src []byte) ([]byte, error) {
	var err error
	if d.n > 0 {
		k := copy(d.held[d.n:], src)
		d.n += k
		src = src[k:]
		if d.n < 4 {
			return dst, nil
		}
		d.n = 0
		if dst, err = decodeGroups(dst, d.held[:]); err != nil {
			return dst, err
		}
	}
	whole := len(src) / 4 * 4
	if dst, err = decodeGroups(dst, src[:whole]); err != nil {
		return dst, err
	}
	d.n = copy(d.held[:], src[whole:])
	return dst, nil
}

// pending reports whether characters of an incomplete group are held: at
// the end of the body, that is an error (the length is not a multiple of
// four).
func (d *textDecoder) pending() bool { return d.n > 0 }

// decodeGroups decodes src, a whole number of four-character groups, onto
// dst. A group with padding ends a run of the standard decoder, which
// refuses data after padding; the next group starts a new one.
func decodeGroups(dst, src []byte) ([]byte, error) {
	if bytes.IndexByte(src, '\r') >= 0 || bytes.IndexByte(src, '\n') >= 0 {
		return dst, errBase64
	}
	for len(src) > 0 {
		end := len(src)
		if i := bytes.IndexByte(src, '='); i >= 0 {
			end = (i/4 + 1) * 4 // the end of the group the padding is in
		}
		start := len(dst)
		dst = slices.Grow(dst, base64.StdEncoding.DecodedLen(end))
		n, err := base64.StdEncoding.Decode(dst[start:start+base64.StdEncoding.DecodedLen(end)], src[:end])
		if err != nil {
			return dst[:start], errBase64
		}
		dst = dst[:start+n]
		src = src[end:]
	}
	return dst, nil
}

// textEncoder base64-encodes a gRPC response body for a grpc-web-text
// client as it passes: it follows the gRPC frames (a five-byte header
// with the payload's length, then the payload) and ends each frame's
// encoding with its frame, padded, as Envoy encodes each frame on its own.
// It holds at most two bytes of an unfinished frame, whatever the frame's
// length, and never the bytes of a finished one.
type textEncoder struct {
	hdr   [frameHeaderLen]byte
	nhdr  int    // header bytes seen of the current frame
	left  uint32 // payload bytes still to come of the current frame
	held  [3]byte
	nheld int
}

// encode appends to dst the base64 of src, up to the last whole three-byte
// group of an unfinished frame.
func (e *textEncoder) encode(dst, src []byte) []byte {
	for len(src) > 0 {
		var take int
		if e.nhdr < frameHeaderLen {
			take = copy(e.hdr[e.nhdr:], src)
			e.nhdr += take
			if e.nhdr == frameHeaderLen {
				e.left = binary.BigEndian.Uint32(e.hdr[1:])
			}
		} else {
			take = len(src)
			if uint64(take) > uint64(e.left) {
				take = int(e.left)
			}
			e.left -= uint32(take)
		}
		dst = e.push(dst, src[:take])
		src = src[take:]
		if e.nhdr == frameHeaderLen && e.left == 0 {
			dst = e.flush(dst)
			e.nhdr = 0
		}
	}
	return dst
}

// push encodes the whole three-byte groups of the held bytes followed by p
// and holds the rest.
func (e *textEncoder) push(dst, p []byte) []byte {
	if e.nheld > 0 {
		k := copy(e.held[e.nheld:], p)
		e.nheld += k
		p = p[k:]
		if e.nheld < 3 {
			return dst
		}
		dst = base64.StdEncoding.AppendEncode(dst, e.held[:])
		e.nheld = 0
	}
	whole := len(p) / 3 * 3
	dst = base64.StdEncoding.AppendEncode(dst, p[:whole])
	e.nheld = copy(e.held[:], p[whole:])
	return dst
}

// flush appends the held bytes, encoded with padding: the encoding of the
// current frame (or of what came of it) is complete.
func (e *textEncoder) flush(dst []byte) []byte {
	if e.nheld > 0 {
		dst = base64.StdEncoding.AppendEncode(dst, e.held[:e.nheld])
		e.nheld = 0
	}
	return dst
}

// appendTrailerFrame appends the gRPC-Web trailers frame that carries t:
// flags 0x80, the length, then a "name:value\r\n" line per field, in
// order.
func appendTrailerFrame(dst []byte, t *httpfilter.Headers) []byte {
	n := 0
	for i := range t.Fields {
		n += len(t.Fields[i].Name) + len(t.Fields[i].Value) + 3
	}
	dst = append(dst, trailerFlag)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for i := range t.Fields {
		dst = append(dst, t.Fields[i].Name...)
		dst = append(dst, ':')
		dst = append(dst, t.Fields[i].Value...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}
