package http2

import (
	"errors"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Header blocks are read here rather than by the Framer (its
// ReadMetaHeaders): the Framer grows a new field slice per block, field by
// field, which was a third of what an HTTP/2 request allocated. The rules
// are the Framer's: HEADERS and CONTINUATION order (which the Framer still
// checks), field names lowercase tokens, values valid, pseudo-fields first,
// known and not repeated, the header list bounded (a block over the bound is
// decoded to keep the HPACK state and marked truncated: 431), a fragment
// larger than twice what the list may still hold a connection error, an
// HPACK error a COMPRESSION_ERROR.

// headerBlock is the request header block being read.
type headerBlock struct {
	streamID    uint32
	endStream   bool
	hasPriority bool
	priority    xh2.PriorityParam
	fields      []hpack.HeaderField // reused from block to block
	truncated   bool
	invalid     error
	sawRegular  bool
	remain      uint32 // list size left
}

// pseudo reports whether the block has pseudo-fields.
func (b *headerBlock) pseudo() bool {
	return len(b.fields) > 0 && strings.HasPrefix(b.fields[0].Name, ":")
}

// connectionSpecific reports whether the block has a connection-specific
// field, which makes any HTTP/2 message malformed, trailers included
// (RFC 9113 §8.2.2).
func (b *headerBlock) connectionSpecific() bool {
	for _, hf := range b.fields {
		if ConnectionSpecific(hf.Name) {
			return true
		}
	}
	return false
}

var (
	errFieldValue     = errors.New("http2: invalid header field value")
	errFieldName      = errors.New("http2: invalid header field name")
	errPseudoLate     = errors.New("http2: pseudo-header field after a regular one")
	errHeaderDecoding = errors.New("http2: HPACK decoding")
)

// newHeaderDecoder returns the connection's HPACK decoder, emitting into
// c.block.
func (c *Conn) newHeaderDecoder() *hpack.Decoder {
	d := hpack.NewDecoder(4096, c.emit)
	d.SetMaxStringLength(int(c.maxListSize()))
	return d
}

func (c *Conn) maxListSize() uint32 {
	if c.opts.MaxHeaderListSize == 0 {
		return 16 << 20
	}
	return c.opts.MaxHeaderListSize
}

// emit takes one decoded field (the decoder's callback).
func (c *Conn) emit(hf hpack.HeaderField) {
	b := &c.block
	if b.invalid != nil || b.truncated {
		return
	}
	if !http1.ValidFieldValue(hf.Value) || hasOuterWhitespace(hf.Value) {
		b.invalid = errFieldValue
		return
	}
	if strings.HasPrefix(hf.Name, ":") {
		if b.sawRegular {
			b.invalid = errPseudoLate
			return
		}
	} else {
		b.sawRegular = true
		if !validFieldName(hf.Name) {
			b.invalid = errFieldName
			return
		}
	}
	if size := hf.Size(); size > b.remain {
		b.truncated = true
		b.remain = 0
		return
	} else {
		b.remain -= size
	}
	b.fields = append(b.fields, hf)
}

// hasOuterWhitespace reports whether v starts or ends with SP or HTAB,
// which makes an HTTP/2 request malformed (RFC 9113 §8.2.1). HTTP/1.1
// strips such whitespace as OWS, so passing it on would let a header
// match or filter here see a value that differs from the upstream's.
func hasOuterWhitespace(v string) bool {
	return v != "" && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t')
}

// validFieldName reports whether name is a lowercase token.
func validFieldName(name string) bool {
	return http1.ValidFieldName(name) && strings.ToLower(name) == name
}

// startBlock begins reading the header block of a HEADERS frame.
func (c *Conn) startBlock(f *xh2.HeadersFrame) {
	b := &c.block
	*b = headerBlock{
		streamID:    f.StreamID,
		endStream:   f.StreamEnded(),
		hasPriority: f.HasPriority(),
		priority:    f.Priority,
		fields:      b.fields[:0],
		remain:      c.maxListSize(),
	}
}

// blockFragment decodes one fragment of the block; it reports a connection
// error, or ok.
func (c *Conn) blockFragment(frag []byte) xh2.ErrCode {
	b := &c.block
	if b.invalid != nil {
		return xh2.ErrCodeProtocol
	}
	// As the Framer: twice what the list (and its trailer allowance) may
	// still hold; nothing once the list is over its bound.
	limit := 2 * (int64(b.remain) + int64(c.maxListSize()))
	if b.truncated {
		limit = 0
	}
	if int64(len(frag)) > limit {
		return xh2.ErrCodeProtocol
	}
	if _, err := c.hdec.Write(frag); err != nil {
		c.debug("http2 header block", errors.Join(errHeaderDecoding, err))
		return xh2.ErrCodeCompression
	}
	return xh2.ErrCodeNo
}

// endBlock ends the block (END_HEADERS): a connection error code, or the
// stream error of a malformed block (ErrCodeNo for a good one).
func (c *Conn) endBlock() (connErr, streamErr xh2.ErrCode) {
	b := &c.block
	if err := c.hdec.Close(); err != nil {
		c.debug("http2 header block", errors.Join(errHeaderDecoding, err))
		return xh2.ErrCodeCompression, xh2.ErrCodeNo
	}
	if b.invalid != nil {
		c.debug("http2 header block", b.invalid)
		return xh2.ErrCodeNo, xh2.ErrCodeProtocol
	}
	// Pseudo-fields: known request ones (not the response's :status),
	// each once.
	for i, hf := range b.fields {
		if !strings.HasPrefix(hf.Name, ":") {
			break
		}
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
		default:
			return xh2.ErrCodeNo, xh2.ErrCodeProtocol
		}
		for _, prev := range b.fields[:i] {
			if prev.Name == hf.Name {
				return xh2.ErrCodeNo, xh2.ErrCodeProtocol
			}
		}
	}
	return xh2.ErrCodeNo, xh2.ErrCodeNo
}
