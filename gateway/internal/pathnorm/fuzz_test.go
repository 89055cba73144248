package pathnorm

import (
	"bytes"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// fuzzOptions decodes the options a fuzz input's first byte selects: bit 0
// Normalize, bit 1 MergeSlashes, bits 2-3 the escaped slashes action.
func fuzzOptions(b byte) Options {
	return Options{Normalize: b&1 != 0, MergeSlashes: b&2 != 0, EscapedSlashes: EscapedSlashesAction(b >> 2 & 3)}
}

// fuzzSeeds are the committed seed corpus of FuzzApply: an options byte,
// then a path.
var fuzzSeeds = map[string][]byte{
	"plain":          []byte("\x0f/api/v1/users/12345?x=1"),
	"dots":           []byte("\x01/a/b/../../../../c/./d/.."),
	"dot-params":     []byte("\x03/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query"),
	"escapes":        []byte("\x01/%61%2e%2E/%2F%5c%25%c0%af"),
	"slashes":        []byte("\x02//a///b//?c//d"),
	"escaped-slash":  []byte("\x0b/admin%2F..%2F%5C..%5csecret"),
	"redirect":       []byte("\x08/a%2fb%2F?%2F"),
	"reject":         []byte("\x04/a%2Fb"),
	"malformed":      []byte("\x01/a%zz/%4/%"),
	"nul":            []byte("\x01/xyz/.%00../abc"),
	"raw-bytes":      []byte("\x01/a b\"<>\\^`{|}\x7f\x80\xff\x00"),
	"fragment":       []byte("\x01/a?b#c"),
	"unescape-only":  []byte("\x0c/%%2fa/%2%2fa/foo%"),
	"asterisk":       []byte("\x0f*"),
	"backslash-dots": []byte("\x03/a\\..\\..\\b\\.\\c"),
}

// TestWriteCorpus keeps testdata/fuzz/FuzzApply in step with fuzzSeeds
// (SLUICE_WRITE_CORPUS=1 writes it).
func TestWriteCorpus(t *testing.T) { fuzzcorpus.Sync(t, "FuzzApply", fuzzSeeds) }

// FuzzApply checks, for any path and options, that Apply never panics,
// is idempotent (a normalized path is left unchanged), and that its output
// holds what each option promises: no dot segment, backslash, fragment,
// NUL or malformed escape after Normalize, no "//" after MergeSlashes, no
// escaped slash after an unescaping action.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		o := fuzzOptions(data[0])
		in := append([]byte(nil), data[1:]...)
		out, oc := o.Apply(nil, in)
		if !bytes.Equal(in, data[1:]) {
			t.Fatalf("Apply modified its input %q", data[1:])
		}
		switch {
		case oc == Reject:
			if out != nil {
				t.Fatalf("Reject with a path %q", out)
			}
			return
		case oc == Unchanged && !bytes.Equal(out, in):
			t.Fatalf("Unchanged but %q → %q", in, out)
		case oc == Redirect && o.EscapedSlashes != UnescapeAndRedirect:
			t.Fatalf("Redirect with %v", o.EscapedSlashes)
		}
		if len(in) == 0 || in[0] != '/' {
			if oc != Unchanged {
				t.Fatalf("%q is not origin-form but %v", in, oc)
			}
			return
		}
		again, oc2 := o.Apply(nil, out)
		if oc2 != Unchanged || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q → %q (%v) → %q (%v)", in, out, oc, again, oc2)
		}
		if out[0] != '/' {
			t.Fatalf("%q → %q does not start with '/'", in, out)
		}
		p := out
		if q := bytes.IndexByte(p, '?'); q >= 0 {
			p = p[:q]
			if !bytes.Equal(out[q:], in[bytes.IndexByte(in, '?'):]) {
				t.Fatalf("%q → %q: the query changed", in, out)
			}
		}
		if o.Normalize {
			checkNormalized(t, in, p)
		}
		if o.MergeSlashes && bytes.Contains(p, []byte("//")) {
			t.Fatalf("%q → %q: slashes not merged", in, out)
		}
		if o.EscapedSlashes != KeepUnchanged && o.Normalize {
			for i := 0; i+2 < len(p); i++ {
				if p[i] == '%' && isSlashEscape(p[i+1], p[i+2]) {
					t.Fatalf("%q → %q: escaped slash left", in, out)
				}
			}
		}
	})
}

// checkNormalized fails t unless the path part p of a normalized path has
// no dot segment, no backslash, NUL or '#', no byte that must be escaped,
// and only well-formed escapes of bytes that are not unreserved.
func checkNormalized(t *testing.T, in, p []byte) {
	t.Helper()
	for _, seg := range bytes.Split(p[1:], []byte("/")) {
		if dotSegment(seg) {
			t.Fatalf("%q → %q: dot segment %q", in, p, seg)
		}
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || class[p[i+1]]&hexDigit == 0 || class[p[i+2]]&hexDigit == 0 {
				t.Fatalf("%q → %q: malformed escape at %d", in, p, i)
			}
			if v := unhex(p[i+1])<<4 | unhex(p[i+2]); v == 0 || class[v]&unres != 0 {
				t.Fatalf("%q → %q: escape of %q left", in, p, v)
			}
			i += 2
		case c == '/':
		case class[c]&plain == 0:
			t.Fatalf("%q → %q: byte %q left raw", in, p, c)
		}
	}
}
