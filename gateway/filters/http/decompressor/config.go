// Package decompressor is the HTTP filter sluice.filters.http.decompressor:
// Envoy's decompressor filter with its gzip, brotli and zstd libraries. It
// decompresses request and response bodies whose content-coding is the
// library's, as they stream, and stops bodies that inflate beyond
// max_inflate_ratio (decompression bombs). See README.md.
package decompressor

import (
	"github.com/sluice-proxy/sluice/gateway/internal/coding"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.http.decompressor"

// DefaultMaxInflateRatio is Envoy's gzip decompressor's max_inflate_ratio.
const DefaultMaxInflateRatio = 100

// maxInflateRatio bounds max_inflate_ratio: deflate cannot exceed 1032:1.
const maxInflateRatio = 100000

func init() {
	registry.Register(registry.Info{
		Name: Name,
		Kind: registry.HTTP,
		New:  func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table, Envoy's Decompressor.
//
//	[[listener.filter_chain.filter.config.http_filter]]
//	name = "sluice.filters.http.decompressor"
//	[listener.filter_chain.filter.config.http_filter.config]
//	decompressor_library = { name = "basic", library = "gzip", max_inflate_ratio = 100 }
//	request_direction_config = { common_config = { enabled = true }, advertise_accept_encoding = true }
//	response_direction_config = { common_config = { ignore_no_transform_header = false } }
type Config struct {
	// DecompressorLibrary selects the library. Required.
	DecompressorLibrary *Library `toml:"decompressor_library"`
	// RequestDirectionConfig and ResponseDirectionConfig configure each
	// direction; both are enabled by default.
	RequestDirectionConfig  RequestDirection `toml:"request_direction_config"`
	ResponseDirectionConfig Direction        `toml:"response_direction_config"`
}

// Library is Envoy's decompressor_library: a name for the stats and the
// library with its settings.
type Library struct {
	// Name names the filter's stats:
	// http.<stat_prefix>.decompressor.<name>.<library>.*. Required.
	Name string `toml:"name"`
	// Library is "gzip" (content-coding gzip), "brotli" (br) or "zstd"
	// (zstd). Required.
	Library string `toml:"library"`
	// MaxInflateRatio bounds how many times larger than the compressed
	// bytes read so far a body may decompress to; past it the stream ends
	// (Envoy's gzip max_inflate_ratio, applied here to every library).
	// Default 100, 1 … 100000.
	MaxInflateRatio *int `toml:"max_inflate_ratio"`
}

// Common is Envoy's CommonDirectionConfig.
type Common struct {
	// Enabled turns the direction's decompression on. Default true.
	Enabled *bool `toml:"enabled"`
	// IgnoreNoTransformHeader decompresses even bodies whose
	// Cache-Control has no-transform. Default false.
	IgnoreNoTransformHeader bool `toml:"ignore_no_transform_header"`
}

// Direction is Envoy's ResponseDirectionConfig.
type Direction struct {
	CommonConfig Common `toml:"common_config"`
}

// RequestDirection is Envoy's RequestDirectionConfig.
type RequestDirection struct {
	CommonConfig Common `toml:"common_config"`
	// AdvertiseAcceptEncoding adds the library's coding to requests'
	// Accept-Encoding when responses are decompressed, so that the
	// upstream may send it. Default true.
	AdvertiseAcceptEncoding *bool `toml:"advertise_accept_encoding"`
}

// dirStatNames are Envoy's counters of each direction, in the order of the
// dirStats fields.
var dirStatNames = []string{"decompressed", "not_decompressed", "total_uncompressed_bytes", "total_compressed_bytes"}

// libStatNames are sluice's counters of the library: bodies that were not
// valid compressed streams, and bodies stopped by max_inflate_ratio.
var libStatNames = []string{"decompression_error", "inflate_ratio_exceeded"}

func (c *Config) lib() (library, bool) {
	if c.DecompressorLibrary == nil {
		return 0, false
	}
	for l := range coding.NumLibraries {
		if c.DecompressorLibrary.Library == l.String() {
			return l, true
		}
	}
	return 0, false
}

func (c *Config) statScope(scope string) string {
	l, _ := c.lib()
	name := ""
	if c.DecompressorLibrary != nil {
		name = c.DecompressorLibrary.Name
	}
	return scope + "decompressor." + name + "." + l.String() + "."
}

// StatDefs implements stats.FilterStats: Envoy's decompressor counters
// under the HTTP connection manager's scope.
func (c *Config) StatDefs(scope string) []stats.Def {
	var defs []stats.Def
	s := c.statScope(scope)
	for _, d := range []string{"request.", "response."} {
		for _, n := range dirStatNames {
			defs = append(defs, stats.Def{Name: s + d + n, Kind: stats.KindCounter})
		}
	}
	for _, n := range libStatNames {
		defs = append(defs, stats.Def{Name: s + "decompressor_library." + n, Kind: stats.KindCounter})
	}
	return defs
}

// Build implements registry.Config.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	if c.DecompressorLibrary == nil {
		return nil, registry.Errorf("decompressor_library", "required: { name = ..., library = \"gzip\" | \"brotli\" | \"zstd\" }")
	}
	dl := c.DecompressorLibrary
	lib, ok := c.lib()
	if !ok {
		return nil, registry.Errorf("decompressor_library.library", "must be gzip, brotli or zstd, got %q", dl.Library)
	}
	if !isToken(dl.Name) {
		return nil, registry.Errorf("decompressor_library.name", "required: a token without dots, got %q", dl.Name)
	}
	f := &Factory{lib: lib, coding: lib.Coding(), ratio: DefaultMaxInflateRatio,
		req:       dirConfig{enabled: on(c.RequestDirectionConfig.CommonConfig.Enabled), ignoreNoTransform: c.RequestDirectionConfig.CommonConfig.IgnoreNoTransformHeader},
		resp:      dirConfig{enabled: on(c.ResponseDirectionConfig.CommonConfig.Enabled), ignoreNoTransform: c.ResponseDirectionConfig.CommonConfig.IgnoreNoTransformHeader},
		advertise: on(c.RequestDirectionConfig.AdvertiseAcceptEncoding)}
	if r := dl.MaxInflateRatio; r != nil {
		if *r < 1 || *r > maxInflateRatio {
			return nil, registry.Errorf("decompressor_library.max_inflate_ratio", "must be 1 … %d, got %d", maxInflateRatio, *r)
		}
		f.ratio = int64(*r)
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	s := c.statScope(ctx.StatScope)
	for _, d := range []struct {
		prefix string
		to     *dirConfig
	}{{"request.", &f.req}, {"response.", &f.resp}} {
		d.to.decompressed = slab.Counter(s + d.prefix + dirStatNames[0])
		d.to.notDecompressed = slab.Counter(s + d.prefix + dirStatNames[1])
		d.to.uncompressedBytes = slab.Counter(s + d.prefix + dirStatNames[2])
		d.to.compressedBytes = slab.Counter(s + d.prefix + dirStatNames[3])
	}
	f.decodeErrors = slab.Counter(s + "decompressor_library." + libStatNames[0])
	f.ratioExceeded = slab.Counter(s + "decompressor_library." + libStatNames[1])
	return f, nil
}

// on reads an optional flag that defaults to true.
func on(b *bool) bool { return b == nil || *b }

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
