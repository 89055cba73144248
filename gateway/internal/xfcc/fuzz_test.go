package xfcc

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// seeds are FuzzParse's seed inputs, also committed under testdata/fuzz.
var seeds = map[string][]byte{
	"envoy-element":      []byte(`By=spiffe://td/a;Hash=0123abcd;Subject="CN=x,O=y";URI=spiffe://td/c;DNS=a.test`),
	"two-elements":       []byte(`Hash=1,Hash=2`),
	"escaped-quote":      []byte(`Subject="a\"b";Cert="-----BEGIN%20CERTIFICATE-----%0A"`),
	"unterminated":       []byte(`x="unterminated`),
	"empty-elements":     []byte(`;;,, ,`),
	"trailing-backslash": []byte(`0=0\`),
	"quote-then-junk":    []byte(`Subject="a"b`),
}

// TestWriteCorpus keeps testdata/fuzz/FuzzParse in step with seeds
// (SLUICE_WRITE_CORPUS=1 writes it).
func TestWriteCorpus(t *testing.T) { fuzzcorpus.Sync(t, "FuzzParse", seeds) }

// FuzzParse feeds Parse values a client or a proxy before sluice may send:
// it must not panic, every pair it returns has a non-empty key, and the
// elements, quoted back as Envoy quotes, parse to the same thing (unless a
// value holds a '\', which Envoy's quoting cannot always carry: a value
// ending in one would escape the closing quote).
func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v := string(in)
		els, err := Parse(v)
		if err != nil {
			return
		}
		var b strings.Builder
		requote := true
		for i, e := range els {
			if len(e) == 0 {
				t.Fatalf("Parse(%q): empty element", v)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			for j, p := range e {
				if p.Key == "" {
					t.Fatalf("Parse(%q): empty key", v)
				}
				if j > 0 {
					b.WriteByte(';')
				}
				requote = requote && !strings.Contains(p.Value, `\`)
				b.WriteString(p.Key + `="` + strings.ReplaceAll(p.Value, `"`, `\"`) + `"`)
			}
		}
		if !requote {
			return
		}
		again, err := Parse(b.String())
		if err != nil || len(again) != len(els) {
			t.Fatalf("Parse(%q) = %q; requoted %q parses to %q, %v", v, els, b.String(), again, err)
		}
		for i := range els {
			for j := range els[i] {
				if again[i][j] != els[i][j] {
					t.Fatalf("Parse(%q) = %q; requoted %q parses to %q", v, els, b.String(), again)
				}
			}
		}
	})
}
