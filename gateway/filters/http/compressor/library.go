package compressor

import (
	"compress/gzip"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-proxy/sluice/gateway/internal/coding"
)

// library is a compression library (coding.Library).
type library = coding.Library

// encoder is what the filter needs of a library's stream writer:
// *gzip.Writer, *brotli.Writer and *zstd.Encoder all have it.
type encoder interface {
	io.WriteCloser
	// Flush writes what the encoder holds so that a decoder can read all
	// bytes written so far (a sync flush).
	Flush() error
	// Reset discards the stream and starts a new one into w.
	Reset(w io.Writer)
}

// encPool pools one library configuration's encoders: an encoder holds
// hundreds of KiB to MiB of tables and windows, too much to allocate per
// response. Pools are shared by every filter with the same configuration,
// across config generations.
type encPool struct {
	sync.Pool
	// new returns a fresh encoder writing to w.
	new func(w io.Writer) encoder
}

// get returns an encoder writing to w.
func (p *encPool) get(w io.Writer) encoder {
	if e, ok := p.Get().(encoder); ok {
		e.Reset(w)
		return e
	}
	return p.new(w)
}

// put returns e to the pool, dropping its stream and writer.
func (p *encPool) put(e encoder) {
	e.Reset(nil)
	p.Put(e)
}

// gzipPools pools gzip writers by level (1 … 9, and -1 at 0).
var gzipPools [10]encPool

func init() {
	for i := range gzipPools {
		level := i
		if i == 0 {
			level = gzip.DefaultCompression
		}
		gzipPools[i].new = func(w io.Writer) encoder {
			zw, _ := gzip.NewWriterLevel(w, level) // a valid level
			return zw
		}
	}
}

func gzipPool(level int) *encPool { return &gzipPools[max(level, 0)] }

// brotliOptions are the brotli library's settings.
type brotliOptions struct{ quality, lgwin int }

// zstdOptions are the zstd library's settings.
type zstdOptions struct {
	level    int
	checksum bool
}

// pools holds the brotli and zstd pools, by brotliOptions or zstdOptions.
var pools sync.Map

func brotliPool(o brotliOptions) *encPool {
	if p, ok := pools.Load(o); ok {
		return p.(*encPool)
	}
	p := &encPool{new: func(w io.Writer) encoder {
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: o.quality, LGWin: o.lgwin})
	}}
	actual, _ := pools.LoadOrStore(o, p)
	return actual.(*encPool)
}

// zstdWindow is the zstd window: 2 MiB, what the reference library uses
// at level 3 for streams of unknown size, and well below the 8 MiB a
// decoder of content-coding zstd must support (RFC 9659).
const zstdWindow = 2 << 20

func zstdPool(o zstdOptions) *encPool {
	if p, ok := pools.Load(o); ok {
		return p.(*encPool)
	}
	p := &encPool{new: func(w io.Writer) encoder {
		// Concurrency 1: the encoder compresses on the caller's goroutine
		// and starts none of its own. The options are constants and a
		// checked level, which NewWriter accepts.
		e, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.level)), zstd.WithEncoderCRC(o.checksum))
		return e
	}}
	actual, _ := pools.LoadOrStore(o, p)
	return actual.(*encPool)
}
