package http1

import (
	"io"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// directReadMin is the smallest read that goes straight from the source into
// the caller's slice when the Reader's buffer is empty.
const directReadMin = 2 << 10

// chunkState is where a chunked body decoder stands.
type chunkState uint8

const (
	chunkSize     chunkState = iota // expecting a chunk-size line
	chunkData                       // inside chunk data
	chunkDataCRLF                   // expecting the CRLF after chunk data
)

// Body reads one message body, decoding the chunked coding. It is owned by
// its Reader and reused by the next BodyReader call; like the Reader, it is
// not safe for concurrent use.
type Body struct {
	r         *Reader
	framing   Framing
	remaining int64 // ContentLength: bytes left; Chunked: bytes left in the chunk
	state     chunkState
	err       error // sticky: io.EOF at the end of the body, or the failure
	trailers  httpfilter.Headers
}

// BodyReader returns the reader of the body of the head just read, framed as
// f (with contentLength for ContentLength framing). The returned *Body is
// owned by r and valid until the next BodyReader, ReadRequest or
// ReadResponse call.
func (r *Reader) BodyReader(f Framing, contentLength int64) *Body {
	tr := r.body.trailers
	tr.Reset()
	r.body = Body{r: r, framing: f, remaining: contentLength, trailers: tr}
	switch {
	case f == NoBody, f == ContentLength && contentLength <= 0, f > UntilClose:
		r.body.err = io.EOF
	}
	return &r.body
}

// Read reads decoded body bytes into p. It returns io.EOF at the end of the
// body, possibly together with the last bytes; io.ErrUnexpectedEOF when the
// peer closed early; the source's error; or an *Error (status 400 or 431)
// for a malformed chunked body. Bytes already buffered are served first; a
// large read with an empty buffer reads straight into p. Read never consumes
// bytes beyond the end of the body, so the next head can be read after it.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch b.framing {
	case ContentLength:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := b.r.readData(p)
		b.remaining -= int64(n)
		switch {
		case b.remaining == 0:
			b.err = io.EOF
		case err != nil:
			b.err = unexpected(err)
		}
		return n, b.err
	case UntilClose:
		n, err := b.r.readData(p)
		if err != nil {
			b.err = err
		}
		return n, err
	default:
		return b.readChunked(p)
	}
}

// Trailers returns the trailer fields of a chunked body once Read has
// returned io.EOF, or nil if there were none. Their slices alias the
// Reader's buffer and stay valid until the next ReadRequest or ReadResponse.
// Framing and hop-by-hop fields (Content-Length, Transfer-Encoding, Host,
// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade) are dropped.
func (b *Body) Trailers() *httpfilter.Headers {
	if b.err != io.EOF || len(b.trailers.Fields) == 0 {
		return nil
	}
	return &b.trailers
}

func (b *Body) fail(err error) (int, error) {
	b.err = err
	return 0, err
}

func (b *Body) readChunked(p []byte) (int, error) {
	r := b.r
	for {
		switch b.state {
		case chunkSize:
			line, err := r.readLine(r.lim.lineBytes, errChunkLineLong)
			if err != nil {
				return b.fail(err)
			}
			size, err := parseChunkSize(line)
			if err != nil {
				return b.fail(err)
			}
			if size == 0 {
				if err := b.readTrailers(); err != nil {
					return b.fail(err)
				}
				return b.fail(io.EOF)
			}
			b.remaining, b.state = size, chunkData
		case chunkData:
			q := p
			if int64(len(q)) > b.remaining {
				q = q[:b.remaining]
			}
			n, err := r.readData(q)
			b.remaining -= int64(n)
			if b.remaining == 0 {
				b.state = chunkDataCRLF
				if b.endBuffered() {
					return n, io.EOF
				}
				b.takeCRLF()
			}
			if n > 0 {
				return n, nil
			}
			return b.fail(unexpected(err))
		case chunkDataCRLF:
			for r.w-r.r < 2 {
				if err := r.fill(r.lim.lineBytes + 2); err != nil {
					return b.fail(unexpected(err))
				}
			}
			if r.buf[r.r] != '\r' || r.buf[r.r+1] != '\n' {
				return b.fail(errChunkCRLF)
			}
			r.r += 2
			b.state = chunkSize
		}
	}
}

// takeCRLF consumes the CRLF after a chunk's data if it is buffered, so
// that Reader.Buffered is empty when the next chunk has not arrived: the
// caller can tell that its next Read would block (and flush what it has
// passed on before).
func (b *Body) takeCRLF() {
	r := b.r
	if r.w-r.r >= 2 && r.buf[r.r] == '\r' && r.buf[r.r+1] == '\n' {
		r.r += 2
		b.state = chunkSize
	}
}

// lastChunk is what usually follows the last chunk's data.
const lastChunk = "\r\n0\r\n\r\n"

// endBuffered consumes the end of the body when it is already buffered in
// its most common form (no extensions, no trailers), so that the last data
// comes back with io.EOF.
func (b *Body) endBuffered() bool {
	r := b.r
	if r.w-r.r < len(lastChunk) || string(r.buf[r.r:r.r+len(lastChunk)]) != lastChunk {
		return false
	}
	r.r += len(lastChunk)
	b.err = io.EOF
	return true
}

// readTrailers reads the trailer section after the last chunk.
func (b *Body) readTrailers() error {
	r := b.r
	n, err := r.scanHead(&r.lim, false, nil)
	if err != nil {
		if err == errHeadTooLarge {
			return errTrailersTooLong
		}
		return err
	}
	rest := r.buf[r.r : r.r+n]
	r.r += n
	for len(rest) > 2 {
		var line []byte
		line, rest = nextLine(rest)
		name, value, err := parseField(line)
		if err != nil {
			return err
		}
		switch string(name) {
		case "content-length", "transfer-encoding", "host", "connection", "keep-alive",
			"proxy-connection", "te", "trailer", "upgrade":
			continue
		}
		b.trailers.Fields = append(b.trailers.Fields, httpfilter.Field{Name: name, Value: value})
	}
	return nil
}

// readData copies unread bytes into p, or reads from the source when none
// are buffered: straight into p when p is large (or the buffer has no room
// past the pinned head), else through the buffer.
func (r *Reader) readData(p []byte) (int, error) {
	if r.r == r.w {
		r.r, r.w = r.pin, r.pin
		if len(p) >= directReadMin || len(r.buf)-r.pin < directReadMin {
			return r.readDirect(p)
		}
		if err := r.fill(len(r.buf)); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// readDirect reads from the source into p, bypassing the buffer.
func (r *Reader) readDirect(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for range maxEmptyReads {
		n, err := r.src.Read(p)
		if n < 0 || n > len(p) {
			r.err = errBadRead
			return 0, r.err
		}
		r.keepErr(err)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
	r.err = io.ErrNoProgress
	return 0, r.err
}

// parseChunkSize parses chunk-size [ chunk-ext ]: hex digits then
// extensions with no whitespace anywhere outside quoted strings.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d, ok := hexVal(line[i])
		if !ok {
			break
		}
		if n > (1<<63-1)>>4 {
			return 0, errChunkOverflow
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, errChunkSize
	}
	if i < len(line) {
		if line[i] != ';' {
			return 0, errChunkSize
		}
		if !validChunkExt(line[i:]) {
			return 0, errChunkExt
		}
	}
	return n, nil
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// validChunkExt checks *( ";" token [ "=" ( token / quoted-string ) ] ).
func validChunkExt(b []byte) bool {
	for len(b) > 0 {
		if b[0] != ';' {
			return false
		}
		b = b[1:]
		i := tokenLen(b)
		if i == 0 {
			return false
		}
		b = b[i:]
		if len(b) == 0 || b[0] != '=' {
			continue
		}
		b = b[1:]
		if len(b) > 0 && b[0] == '"' {
			i = quotedLen(b)
		} else {
			i = tokenLen(b)
		}
		if i == 0 {
			return false
		}
		b = b[i:]
	}
	return true
}

// tokenLen returns the length of the token at the start of b.
func tokenLen(b []byte) int {
	for i, c := range b {
		if !tokenTable[c] {
			return i
		}
	}
	return len(b)
}

// quotedLen returns the length of the quoted-string at the start of b, or 0
// if it is not one.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i == len(b) || !valueTable[b[i]] {
				return 0
			}
		case !valueTable[c]:
			return 0
		}
	}
	return 0
}
