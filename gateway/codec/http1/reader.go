package http1

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
)

// initialBufSize is the size of the pooled buffers a Reader starts with.
const initialBufSize = 4 << 10

// maxEmptyReads is how many (0, nil) reads in a row a Reader tolerates from
// its source before failing with io.ErrNoProgress.
const maxEmptyReads = 100

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, initialBufSize)
	return &b
}}

// Reader is a buffered reader over a connection that parses HTTP/1.1 heads
// and decodes bodies. It owns a buffer (initially 4 KiB from a pool, grown up
// to the head limit when a head needs it).
//
// A Reader is not safe for concurrent use: one goroutine (the connection's)
// calls all its methods. Slices it hands out (head fields, trailers,
// Buffered) alias its buffer and stay valid until the next ReadRequest or
// ReadResponse call, or Reset, Preload or Release.
type Reader struct {
	src  io.Reader
	bufp *[]byte // pooled buffer backing buf, or nil when buf is not pooled
	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	pin  int   // buf[:pin] holds a parsed head that must not be overwritten
	err  error // sticky read error, returned once the buffer is drained

	lim      limits   // limits of the last head read, applied to trailers
	connVals [][]byte // Connection field values of the head being parsed
	body     Body     // reused by BodyReader
}

// NewReader returns a Reader reading from r with a pooled buffer.
func NewReader(r io.Reader) *Reader {
	rd := &Reader{}
	rd.Reset(r)
	return rd
}

// Reset discards all buffered bytes and state and makes the Reader read from
// src, keeping its buffer (or taking a pooled one after Release).
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.r, r.w, r.pin = 0, 0, 0
	r.err = nil
	r.lim = (*Limits)(nil).resolve()
	r.body = Body{}
	if r.buf == nil {
		r.bufp = bufPool.Get().(*[]byte)
		r.buf = *r.bufp
	}
}

// Release returns the buffer to the pool. Every slice the Reader handed out
// becomes invalid. The Reader may be used again after Reset.
func (r *Reader) Release() {
	if r.bufp != nil {
		bufPool.Put(r.bufp)
	}
	r.bufp, r.buf = nil, nil
	r.r, r.w, r.pin = 0, 0, 0
	r.src = nil
	r.body = Body{}
}

// Buffered returns the bytes read from the source but not yet consumed
// (read-ahead), for example to hand an idle connection to another process.
// The slice aliases the buffer.
func (r *Reader) Buffered() []byte { return r.buf[r.r:r.w] }

// Preload makes b the first bytes read, ahead of any already buffered: use
// it when adopting a connection handed off with read-ahead bytes. b is copied.
func (r *Reader) Preload(b []byte) {
	if len(b) == 0 {
		return
	}
	if r.buf == nil {
		r.Reset(r.src)
	}
	n := r.w - r.r
	need := r.pin + len(b) + n
	if need > len(r.buf) {
		size := len(r.buf)
		for size < len(b)+n {
			size *= 2
		}
		nb := make([]byte, size)
		copy(nb[len(b):], r.buf[r.r:r.w])
		r.dropBuf()
		r.buf, r.pin = nb, 0
	} else {
		copy(r.buf[r.pin+len(b):], r.buf[r.r:r.w])
	}
	copy(r.buf[r.pin:], b)
	r.r = r.pin
	r.w = r.pin + len(b) + n
}

// dropBuf forgets the current buffer before a larger one replaces it. The
// buffer goes back to the pool only when no parsed head aliases it.
func (r *Reader) dropBuf() {
	if r.bufp != nil && r.pin == 0 {
		bufPool.Put(r.bufp)
	}
	r.bufp = nil
}

// unpin releases the previous head: its slices become invalid, and unread
// bytes move to the front of the buffer.
func (r *Reader) unpin() {
	r.pin = 0
	if r.buf == nil {
		r.Reset(r.src)
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
}

// pinHead protects the head just parsed, buf[:end], while a body is read.
func (r *Reader) pinHead() { r.pin = r.r }

// fill reads once more from the source into the buffer, compacting unread
// bytes down to the pin or growing the buffer up to maxBuf bytes. It returns
// errBufferFull when the buffer cannot take more bytes.
func (r *Reader) fill(maxBuf int) error {
	if r.w == len(r.buf) {
		if r.r > r.pin {
			r.w = r.pin + copy(r.buf[r.pin:], r.buf[r.r:r.w])
			r.r = r.pin
		}
		if r.w == len(r.buf) {
			n := r.w - r.r
			if n >= maxBuf {
				return errBufferFull
			}
			size := 2 * len(r.buf)
			if size < initialBufSize {
				size = initialBufSize
			}
			if size > maxBuf {
				size = maxBuf
			}
			if size <= n {
				return errBufferFull
			}
			nb := make([]byte, size)
			copy(nb, r.buf[r.r:r.w])
			r.dropBuf()
			r.buf, r.r, r.w, r.pin = nb, 0, n, 0
		}
	}
	if r.err != nil {
		return r.err
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.err = errBadRead
			return r.err
		}
		r.w += n
		r.keepErr(err)
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	r.err = io.ErrNoProgress
	return r.err
}

// keepErr makes a read error sticky, except a deadline: the caller may
// extend it and read on (a drain or an idle check woke the read). Bytes of a
// head read before the deadline stay buffered, and the next ReadRequest or
// ReadResponse starts over from them.
func (r *Reader) keepErr(err error) {
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		r.err = err
	}
}

// errBufferFull is internal: callers turn it into the limit error that
// applies to what they were reading.
var errBufferFull = &Error{431, "buffer full"}

// errBadRead reports a source returning an impossible count.
var errBadRead = &Error{400, "invalid read count from source"}

// readLine returns the next CRLF-terminated line without its CRLF and
// consumes it. A line longer than max bytes fails with long.
func (r *Reader) readLine(max int, long error) ([]byte, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(r.buf[r.r+scanned:r.w], '\n'); i >= 0 {
			end := r.r + scanned + i
			if end == r.r || r.buf[end-1] != '\r' {
				return nil, errBareLF
			}
			if end-1-r.r > max {
				return nil, long
			}
			line := r.buf[r.r : end-1]
			r.r = end + 1
			return line, nil
		}
		scanned = r.w - r.r
		if scanned > max+1 {
			return nil, long
		}
		if err := r.fill(max + 2); err != nil {
			if err == errBufferFull {
				return nil, long
			}
			return nil, unexpected(err)
		}
	}
}

// unexpected turns io.EOF in the middle of a message into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
