// Package coding names the content-codings (RFC 9110 §8.4.1) that the
// compressor and decompressor filters speak, by the libraries that
// implement them.
package coding

// Library is a compression library: gzip, brotli or zstd.
type Library uint8

// The libraries, in config order.
const (
	Gzip Library = iota
	Brotli
	Zstd
	NumLibraries
)

// String is the library's config name, also its stat prefix.
func (l Library) String() string { return [...]string{"gzip", "brotli", "zstd"}[l] }

// Coding is the library's content-coding: gzip, br or zstd.
func (l Library) Coding() string { return [...]string{"gzip", "br", "zstd"}[l] }
