// Package buffer holds the byte buffer that network and HTTP filters exchange.
//
// A Buffer is a contract type: it belongs to the filter manager that passes it
// to a filter, and a filter must not retain it (or slices of it) after the call
// returns, unless the call's documentation says otherwise.
package buffer

// Buffer is a growable byte buffer with a read position. The zero value is an
// empty buffer ready to use. A Buffer is not safe for concurrent use.
type Buffer struct {
	b   []byte
	off int
}

// New returns a buffer that takes ownership of b's contents.
func New(b []byte) *Buffer { return &Buffer{b: b} }

// Len returns the number of unread bytes.
func (b *Buffer) Len() int { return len(b.b) - b.off }

// Bytes returns the unread bytes. The slice aliases the buffer and is valid
// until the next mutating call.
func (b *Buffer) Bytes() []byte { return b.b[b.off:] }

// Append appends p to the buffer.
func (b *Buffer) Append(p []byte) { b.b = append(b.b, p...) }

// AppendString appends s to the buffer.
func (b *Buffer) AppendString(s string) { b.b = append(b.b, s...) }

// Drain discards the first n unread bytes. It panics if n exceeds Len, which
// is a programming error.
func (b *Buffer) Drain(n int) {
	if n > b.Len() {
		panic("buffer: drain beyond length")
	}
	b.off += n
	if b.off == len(b.b) {
		b.b = b.b[:0]
		b.off = 0
	}
}

// Reset empties the buffer, keeping its capacity.
func (b *Buffer) Reset() {
	b.b = b.b[:0]
	b.off = 0
}

// Set replaces the contents with p without copying: the buffer aliases p
// until the next mutating call. It lets a manager hand a filter a view of
// bytes it already holds.
func (b *Buffer) Set(p []byte) {
	b.b = p
	b.off = 0
}

// Move appends all of src's unread bytes to b and empties src.
func (b *Buffer) Move(src *Buffer) {
	b.Append(src.Bytes())
	src.Reset()
}
