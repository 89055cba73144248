package decompressor

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-proxy/sluice/gateway/internal/coding"
)

// library is a compression library (coding.Library).
type library = coding.Library

// zstdMaxWindow is the largest zstd window accepted: 8 MiB, what a decoder
// of content-coding zstd must support (RFC 9659) and need not exceed.
const zstdMaxWindow = 8 << 20

// brotliExcessiveInput is the brotli decoder's (unexported) error for
// input past the end of a stream.
const brotliExcessiveInput = "brotli: excessive input"

// readChunk is how many decompressed bytes one read asks for: Envoy's
// default chunk_size.
const readChunk = 4096

// Pools of the gzip decoder's state (its window and tables are most of a
// stream's cost) and of the read buffers, shared by every filter.
var (
	gzipPool  sync.Pool // *gzip.Reader
	bufPool   sync.Pool // *bufio.Reader
	chunkPool = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}
)

// Errors that end a decompressing stream.
var (
	// ErrRatio: the body decompresses to more than max_inflate_ratio times
	// the compressed bytes read so far (a decompression bomb).
	ErrRatio = errors.New("decompressor: body exceeds max_inflate_ratio")
	// errAborted ends the goroutine of a stream that went away.
	errAborted = errors.New("decompressor: stream ended")
)

// chunk is a piece of compressed input for an inflater: the last one has
// end set.
type chunk struct {
	b   []byte
	end bool
}

// inflater decompresses one body as it streams, without holding it. The
// decoders of Go's libraries pull their input from an io.Reader, while a
// filter gets its input pushed a chunk at a time, so each inflater runs its
// decoder on a goroutine of its own, and hands over control in turns: feed
// gives the goroutine a chunk and waits while it decompresses everything
// the chunk allows, until the decoder asks for more input or ends. Only
// one side runs at a time; every handover is a channel operation, so out,
// err and the counters need no lock.
type inflater struct {
	lib   library
	ratio int64
	in    chan chunk
	// ready carries one signal per chunk fed: the goroutine wants more
	// input, or has ended (done). Buffered: the last signal after an
	// abort is not waited for.
	ready chan struct{}
	// Goroutine side; read by the filter after a signal.
	cur      []byte
	ended    bool
	out      []byte // decompressed since the last feed
	inTotal  int64  // compressed bytes read
	outTotal int64  // decompressed bytes produced
	done     bool
	err      error // nil at a clean end
}

func newInflater(lib library, ratio int64) *inflater {
	z := &inflater{lib: lib, ratio: ratio, in: make(chan chunk), ready: make(chan struct{}, 1)}
	go z.run()
	return z
}

// Read implements io.Reader for the decoder: it hands out the current
// chunk and, once that is used up, waits for the next.
func (z *inflater) Read(p []byte) (int, error) {
	for len(z.cur) == 0 {
		if z.ended {
			return 0, io.EOF
		}
		z.ready <- struct{}{}
		c, ok := <-z.in
		if !ok {
			return 0, errAborted
		}
		z.cur, z.ended = c.b, c.end
	}
	n := copy(p, z.cur)
	z.cur = z.cur[n:]
	z.inTotal += int64(n)
	return n, nil
}

// run is the inflater's goroutine.
func (z *inflater) run() {
	c, ok := <-z.in
	if !ok {
		return
	}
	z.cur, z.ended = c.b, c.end
	z.err = z.decode()
	if z.err == nil {
		// The compressed stream ended: the body must end with it.
		var one [1]byte
		if n, err := io.ReadFull(z, one[:]); n > 0 {
			z.err = errors.New("decompressor: data after the end of the compressed stream")
		} else if err != io.EOF {
			z.err = err
		}
	}
	z.cur, z.done = nil, true
	z.ready <- struct{}{}
}

// decode runs the library's decoder over the input until it ends.
func (z *inflater) decode() error {
	var r io.Reader
	switch z.lib {
	case coding.Gzip:
		br, _ := bufPool.Get().(*bufio.Reader)
		if br == nil {
			br = bufio.NewReaderSize(z, readChunk)
		} else {
			br.Reset(z)
		}
		defer func() { br.Reset(nil); bufPool.Put(br) }()
		zr, _ := gzipPool.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(br)
		} else {
			err = zr.Reset(br)
		}
		if err != nil {
			return err
		}
		defer gzipPool.Put(zr)
		r = zr
	case coding.Brotli:
		r = brotli.NewReader(z)
	case coding.Zstd:
		zr, err := zstd.NewReader(z, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			z.outTotal += int64(n)
			if z.outTotal > z.ratio*max(z.inTotal, 1) {
				return ErrRatio
			}
			z.out = append(z.out, buf[:n]...)
		}
		if err == io.EOF || z.lib == coding.Brotli && err != nil && err.Error() == brotliExcessiveInput {
			// The brotli decoder reports the bytes it staged past the
			// end of the stream as an error, which it also does at the
			// end of a valid stream fed a byte at a time: such bytes
			// are dropped.
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// feed gives the inflater the next compressed bytes (b is not kept after
// feed returns) and returns what they decompressed to, valid until the
// next feed, and whether the stream ended, with its error. After the end,
// further feeds return nothing.
func (z *inflater) feed(b []byte, end bool) (out []byte, done bool, err error) {
	if z.done {
		return nil, true, z.err
	}
	z.out = z.out[:0]
	z.in <- chunk{b: b, end: end}
	<-z.ready
	return z.out, z.done, z.err
}

// close ends the goroutine of an inflater that has not ended.
func (z *inflater) close() {
	if !z.done {
		close(z.in)
		z.done = true
	}
}
