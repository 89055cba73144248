// Package compressor is the HTTP filter sluice.filters.http.compressor:
// Envoy's compressor filter with its gzip, brotli and zstd libraries. It
// compresses response bodies for clients that accept the library's
// content-coding, when the response's content type is in the configured
// list and nothing in the response forbids it. Several compressors in one
// chain choose among themselves, per response, the coding the client
// prefers. See README.md.
package compressor

import (
	"compress/gzip"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/internal/coding"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.compressor"

// DefaultMinContentLength is Envoy's min_content_length: a response with a
// shorter Content-Length is not compressed.
const DefaultMinContentLength = 30

// DefaultContentTypes are Envoy's default compressible media types.
var DefaultContentTypes = []string{
	"application/javascript", "application/json", "application/xhtml+xml", "image/svg+xml",
	"text/css", "text/html", "text/plain", "text/xml",
}

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.HTTP,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.compressor"
//	[listener.filter_chain.filter.config.http_filter.config]
//	library = "brotli"
//	min_content_length = 30
//	content_type = ["text/html", "application/json"]
//	brotli = { quality = 4, window_bits = 18 }
type Config struct {
	// Library is the compression library, Envoy's compressor_library:
	// "gzip" (default; content-coding gzip), "brotli" (br) or "zstd"
	// (zstd).
	Library string `toml:"library"`
	// Name names the filter's stats:
	// http.<stat_prefix>.compressor.<name>.<library>.*. Default the
	// library's name, as Envoy's compressor_library name would be.
	Name string `toml:"name"`
	// MinContentLength: a response whose Content-Length is below it is
	// not compressed. Default 30.
	MinContentLength *int `toml:"min_content_length"`
	// ContentType lists the media types that are compressed (parameters
	// such as charset ignored). Default DefaultContentTypes.
	ContentType []string `toml:"content_type"`
	// DisableOnEtagHeader leaves responses with an ETag uncompressed.
	// Default false: a strong ETag is made weak instead.
	DisableOnEtagHeader bool `toml:"disable_on_etag_header"`
	// RemoveAcceptEncodingHeader removes Accept-Encoding from requests, so
	// that upstreams answer uncompressed and this filter compresses. In a
	// chain of several compressors it is removed after the last of them
	// has read it.
	RemoveAcceptEncodingHeader bool `toml:"remove_accept_encoding_header"`
	// CompressionLevel is gzip's level (library "gzip" only):
	// "default_compression" (default, zlib's 6), "best_speed" (1),
	// "best_compression" (9) or "1" … "9".
	CompressionLevel string `toml:"compression_level"`
	// Brotli configures the brotli library (library "brotli" only).
	Brotli *BrotliConfig `toml:"brotli"`
	// Zstd configures the zstd library (library "zstd" only).
	Zstd *ZstdConfig `toml:"zstd"`
}

// BrotliConfig is the brotli library's table, Envoy's
// envoy.compression.brotli.compressor.
type BrotliConfig struct {
	// Quality is 0 (fastest) … 11 (densest). Default 3, Envoy's.
	Quality *int `toml:"quality"`
	// WindowBits is the base 2 logarithm of the window, 10 … 24. Default
	// 18, Envoy's.
	WindowBits *int `toml:"window_bits"`
}

// ZstdConfig is the zstd library's table, Envoy's
// envoy.compression.zstd.compressor.
type ZstdConfig struct {
	// CompressionLevel is zstd's level, 1 … 22. Default 3, Envoy's. The
	// pure Go encoder has four speeds: 1–2 fastest, 3–5 default, 6–9
	// better, 10–22 best.
	CompressionLevel *int `toml:"compression_level"`
	// EnableChecksum adds a checksum of the content to each frame.
	// Default false, as Envoy's enable_checksum.
	EnableChecksum bool `toml:"enable_checksum"`
}

// Envoy's brotli and zstd defaults and bounds.
const (
	DefaultBrotliQuality    = 3
	DefaultBrotliWindowBits = 18
	DefaultZstdLevel        = 3
)

// statNames are the filter's counters, Envoy's, in the order of the Stats
// fields.
var statNames = []string{
	"compressed", "not_compressed", "no_accept_header", "header_identity", "header_gzip",
	"header_wildcard", "header_not_valid", "content_length_too_small", "not_compressed_etag",
	"total_uncompressed_bytes", "total_compressed_bytes", "header_compressor_used",
	"header_compressor_overshadowed",
}

// lib returns the configured library, or false for an unknown name.
func (c *Config) lib() (library, bool) {
	if c.Library == "" {
		return coding.Gzip, true
	}
	for l := range coding.NumLibraries {
		if c.Library == l.String() {
			return l, true
		}
	}
	return 0, false
}

func (c *Config) name() string {
	if c.Name != "" {
		return c.Name
	}
	if l, ok := c.lib(); ok {
		return l.String()
	}
	return c.Library
}

func (c *Config) statScope(scope string) string {
	l, _ := c.lib()
	return scope + "compressor." + c.name() + "." + l.String() + "."
}

// StatDefs implements stats.FilterStats: Envoy's compressor counters under
// the HTTP connection manager's scope.
func (c *Config) StatDefs(scope string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: c.statScope(scope) + n, Kind: stats.KindCounter}
	}
	return defs
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	lib, ok := c.lib()
	if !ok {
		return nil, registry.Errorf("library", "must be gzip, brotli or zstd, got %q", c.Library)
	}
	f := &Factory{lib: lib, minLength: DefaultMinContentLength,
		disableOnEtag: c.DisableOnEtagHeader, removeAccept: c.RemoveAcceptEncodingHeader}
	if !isToken(c.name()) {
		return nil, registry.Errorf("name", "must be a non-empty token without dots, got %q", c.Name)
	}
	if c.MinContentLength != nil {
		if *c.MinContentLength < 0 {
			return nil, registry.Errorf("min_content_length", "must be >= 0")
		}
		f.minLength = int64(*c.MinContentLength)
	}
	types := c.ContentType
	if types == nil {
		types = DefaultContentTypes
	}
	for i, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if typ, sub, ok := strings.Cut(t, "/"); !ok || typ == "" || sub == "" || strings.ContainsAny(t, " ;,") {
			return nil, registry.Errorf(fmt.Sprintf("content_type[%d]", i), "%q is not a media type", types[i])
		}
		f.types = append(f.types, t)
	}
	if err := c.buildLibrary(f); err != nil {
		return nil, err
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	scope := c.statScope(ctx.StatScope)
	cs := make([]*stats.Counter, len(statNames))
	for i, n := range statNames {
		cs[i] = slab.Counter(scope + n)
	}
	f.stats = Stats{Compressed: cs[0], NotCompressed: cs[1], NoAcceptHeader: cs[2], HeaderIdentity: cs[3],
		HeaderGzip: cs[4], HeaderWildcard: cs[5], HeaderNotValid: cs[6], ContentLengthTooSmall: cs[7],
		NotCompressedEtag: cs[8], TotalUncompressedBytes: cs[9], TotalCompressedBytes: cs[10],
		HeaderCompressorUsed: cs[11], HeaderCompressorOvershadowed: cs[12]}
	f.name = c.name()
	f.chain = []*Factory{f}
	f.removeNow = f.removeAccept
	return f, nil
}

// buildLibrary checks the library's keys and sets f's encoder pool.
func (c *Config) buildLibrary(f *Factory) error {
	only := func(key string) error {
		return registry.Errorf(key, "is for library %q only; this filter's library is %q", map[string]string{
			"compression_level": "gzip", "brotli": "brotli", "zstd": "zstd"}[key], f.lib)
	}
	if c.CompressionLevel != "" && f.lib != coding.Gzip {
		return only("compression_level")
	}
	if c.Brotli != nil && f.lib != coding.Brotli {
		return only("brotli")
	}
	if c.Zstd != nil && f.lib != coding.Zstd {
		return only("zstd")
	}
	switch f.lib {
	case coding.Gzip:
		level := gzip.DefaultCompression
		switch lv := c.CompressionLevel; lv {
		case "", "default_compression":
		case "best_speed":
			level = gzip.BestSpeed
		case "best_compression":
			level = gzip.BestCompression
		default:
			n, err := strconv.Atoi(lv)
			if err != nil || n < 1 || n > 9 {
				return registry.Errorf("compression_level", "must be default_compression, best_speed, best_compression or 1 … 9, got %q", lv)
			}
			level = n
		}
		f.pool = gzipPool(level)
	case coding.Brotli:
		o := brotliOptions{quality: DefaultBrotliQuality, lgwin: DefaultBrotliWindowBits}
		if b := c.Brotli; b != nil {
			if b.Quality != nil {
				if *b.Quality < 0 || *b.Quality > 11 {
					return registry.Errorf("brotli.quality", "must be 0 … 11, got %d", *b.Quality)
				}
				o.quality = *b.Quality
			}
			if b.WindowBits != nil {
				if *b.WindowBits < 10 || *b.WindowBits > 24 {
					return registry.Errorf("brotli.window_bits", "must be 10 … 24, got %d", *b.WindowBits)
				}
				o.lgwin = *b.WindowBits
			}
		}
		f.pool = brotliPool(o)
	case coding.Zstd:
		o := zstdOptions{level: DefaultZstdLevel}
		if z := c.Zstd; z != nil {
			if z.CompressionLevel != nil {
				if *z.CompressionLevel < 1 || *z.CompressionLevel > 22 {
					return registry.Errorf("zstd.compression_level", "must be 1 … 22, got %d", *z.CompressionLevel)
				}
				o.level = *z.CompressionLevel
			}
			o.checksum = z.EnableChecksum
		}
		f.pool = zstdPool(o)
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
