// Package compressor is the HTTP filter sluice.filters.http.compressor:
// Envoy's compressor filter with its gzip library. It compresses response
// bodies for clients that accept gzip, when the response's content type is
// in the configured list and nothing in the response forbids it. See
// README.md.
package compressor

import (
	"compress/gzip"
	"fmt"
	"strconv"
	"strings"

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
//	min_content_length = 30
//	content_type = ["text/html", "application/json"]
//	compression_level = "best_speed"
type Config struct {
	// Name names the filter's stats:
	// http.<stat_prefix>.compressor.<name>.gzip.*. Default "gzip", as
	// Envoy's compressor_library name would be.
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
	// that upstreams answer uncompressed and this filter compresses.
	RemoveAcceptEncodingHeader bool `toml:"remove_accept_encoding_header"`
	// CompressionLevel is "default_compression" (default, zlib's 6),
	// "best_speed" (1), "best_compression" (9) or "1" … "9".
	CompressionLevel string `toml:"compression_level"`
}

// statNames are the filter's counters, Envoy's, in the order of the Stats
// fields.
var statNames = []string{
	"compressed", "not_compressed", "no_accept_header", "header_identity", "header_gzip",
	"header_wildcard", "header_not_valid", "content_length_too_small", "not_compressed_etag",
	"total_uncompressed_bytes", "total_compressed_bytes",
}

func (c *Config) name() string {
	if c.Name == "" {
		return "gzip"
	}
	return c.Name
}

func (c *Config) statScope(scope string) string {
	return scope + "compressor." + c.name() + ".gzip."
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
	f := &Factory{minLength: DefaultMinContentLength, level: gzip.DefaultCompression,
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
	switch lv := c.CompressionLevel; lv {
	case "", "default_compression":
	case "best_speed":
		f.level = gzip.BestSpeed
	case "best_compression":
		f.level = gzip.BestCompression
	default:
		n, err := strconv.Atoi(lv)
		if err != nil || n < 1 || n > 9 {
			return nil, registry.Errorf("compression_level", "must be default_compression, best_speed, best_compression or 1 … 9, got %q", lv)
		}
		f.level = n
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	scope := c.statScope(ctx.StatScope)
	cs := make([]*stats.Counter, len(statNames))
	for i, n := range statNames {
		cs[i] = slab.Counter(scope + n)
	}
	f.stats = Stats{Compressed: cs[0], NotCompressed: cs[1], NoAcceptHeader: cs[2], HeaderIdentity: cs[3],
		HeaderGzip: cs[4], HeaderWildcard: cs[5], HeaderNotValid: cs[6], ContentLengthTooSmall: cs[7],
		NotCompressedEtag: cs[8], TotalUncompressedBytes: cs[9], TotalCompressedBytes: cs[10]}
	return f, nil
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
